"""Links from alert text never render as clickable in Discord (masked links, bare URLs), in every
text a message can carry: content, title, description, field names and values, footer, author."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from alert_receiver.discord_payload import neutralise_links, safe_payload

EVIL = "[click to verify](https://evil.example/login)"
BARE = "see https://evil.example/reset?user=1 now"

# What Discord would render as a link: a masked link, or a scheme:// outside code.
_MASKED = re.compile(r"\[[^\]]*\]\(\s*<?[A-Za-z][A-Za-z0-9+.-]*://[^\s()`]+[^()]*\)")
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)


def clickable(text: str) -> bool:
    # Discord renders no link inside code, and a code span separates the text around it.
    outside = _CODE.sub(" ", text)
    return bool(_MASKED.search(outside)) or re.search(r"://[^\s`<>]", outside) is not None


def texts(message: dict[str, Any]) -> list[str]:
    out = [message.get("content", "")]
    for embed in message.get("embeds", ()):
        out += [embed.get("title", ""), embed.get("description", "")]
        out += [embed.get("footer", {}).get("text", ""), embed.get("author", {}).get("name", "")]
        for field in embed.get("fields", ()):
            out += [field["name"], field["value"]]
    return out


def test_masked_link_shows_its_target_as_code() -> None:
    assert neutralise_links(EVIL) == "click to verify (`https://evil.example/login`)"
    assert neutralise_links(BARE) == "see `https://evil.example/reset?user=1` now"
    # Already code: left alone (Discord renders no link there).
    assert neutralise_links("`https://x.example`") == "`https://x.example`"
    assert neutralise_links("```\nhttps://x.example\n```") == "```\nhttps://x.example\n```"


def test_every_embed_text_is_neutralised() -> None:
    message = {
        "content": EVIL,
        "embeds": [
            {
                "title": EVIL,
                "description": f"{EVIL}\n{BARE}",
                "footer": {"text": BARE},
                "author": {"name": EVIL},
                "fields": [
                    {"name": EVIL, "value": BARE},
                    {"name": "runbook", "value": "https://evil.example"},
                ],
            }
        ],
    }
    for out in safe_payload(message):
        for text in texts(out):
            assert not clickable(text), text
        assert safe_payload(out) == [out]  # idempotent


def test_a_cut_never_leaves_half_a_url_outside_code() -> None:
    value = "word " * 200 + "https://evil.example/" + "a" * 2000
    for out in safe_payload({"embeds": [{"description": value, "fields": [{"name": "n", "value": value}]}]}):
        for text in texts(out):
            assert not clickable(text), text[-80:]


@example(["[a](", ")", "https://", "[a]("])  # an empty masked target next to a scheme
@example(["https://", "`[a](`", "[a]("])  # found by hypothesis: a scheme right before a code span
@given(
    st.lists(
        st.sampled_from(["[a](", "https://", "evil.example", "`", "```", ")", "]", " ", "\n", "x"]),
        max_size=40,
    )
)
def test_no_link_survives_any_mix(parts: list[str]) -> None:
    out = neutralise_links("".join(parts))
    assert not clickable(out), out
