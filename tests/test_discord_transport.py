"""safe_payload (limits, mentions, splitting) and DiscordTransport (one request, error classes)
against the loopback fake in discord_fake.py."""

from __future__ import annotations

import logging
import re
import socket
import traceback
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from alert_receiver.discord_payload import (
    ELLIPSIS,
    FENCE,
    LIMITS,
    ZWSP,
    safe_payload,
    split_content,
    text_length,
    truncate,
)
from alert_receiver.discord_transport import (
    DiscordError,
    DiscordTransport,
    PermanentDiscordError,
    TransientDiscordError,
)
from lab.fake_discord import FakeDiscord, Hang, RateLimited, Status, discord_fake, validate_payload

__all__ = ["discord_fake"]  # the fixture, imported for pytest

USER_A = "123456789012345678"
USER_B = "223456789012345678"


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def all_texts(message: dict[str, Any]) -> list[str]:
    texts = [message.get("content", ""), message.get("username", "")]
    for embed in message.get("embeds", []):
        texts += [embed.get("title", ""), embed.get("description", "")]
        texts += [embed.get("footer", {}).get("text", ""), embed.get("author", {}).get("name", "")]
        for fld in embed.get("fields", []):
            texts += [fld["name"], fld["value"]]
    return texts


def assert_discord_safe(message: dict[str, Any], allow: set[str]) -> None:
    """Every documented limit, counted in UTF-16 units (the stricter measure)."""
    assert validate_payload(message, count=utf16_units) == {}
    assert validate_payload(message) == {}
    mentions = message["allowed_mentions"]
    assert mentions["parse"] == []
    assert set(mentions) == {"parse", "users"}
    content_ids = set(re.findall(r"<@!?(\d+)>", message.get("content", "")))
    assert set(mentions["users"]) <= content_ids & allow
    for text in all_texts(message):
        assert "@everyone" not in text and "@here" not in text


# ---------------------------------------------------------------------------------------------
# safe_payload: examples
# ---------------------------------------------------------------------------------------------


def test_small_payload_passes_through_with_explicit_allowed_mentions() -> None:
    out = safe_payload({"content": "bot restarted", "embeds": [{"title": "OOM", "color": 15158332}]})
    assert out == [
        {
            "content": "bot restarted",
            "embeds": [{"title": "OOM", "color": 15158332}],
            "allowed_mentions": {"parse": [], "users": []},
        }
    ]


def test_mass_mentions_are_neutralised_everywhere() -> None:
    payload = {
        "content": "@everyone look @here",
        "username": "@here-bot",
        "embeds": [{"title": "@everyone", "fields": [{"name": "@here", "value": "x @everyone y"}]}],
    }
    [out] = safe_payload(payload)
    assert out["content"] == f"@{ZWSP}everyone look @{ZWSP}here"
    assert out["embeds"][0]["fields"][0]["value"] == f"x @{ZWSP}everyone y"
    assert_discord_safe(out, set())
    assert safe_payload(out) == [out]  # idempotent


def test_only_allowed_users_mentioned_in_content_may_ping() -> None:
    content = f"<@{USER_A}> and <@!{USER_B}> and <@&{USER_A}>"
    [out] = safe_payload(
        {"content": content, "embeds": [{"description": f"<@{USER_B}>"}]}, allow_user_ids=[USER_A]
    )
    assert out["allowed_mentions"] == {"parse": [], "users": [USER_A]}
    [no_allow] = safe_payload({"content": content})
    assert no_allow["allowed_mentions"] == {"parse": [], "users": []}
    # Allowed but not mentioned in content (only in an embed) → not listed.
    [embed_only] = safe_payload({"embeds": [{"description": f"<@{USER_B}>"}]}, allow_user_ids=[USER_B])
    assert embed_only["allowed_mentions"]["users"] == []


def test_caller_allowed_mentions_are_overridden() -> None:
    [out] = safe_payload({"content": "@everyone", "allowed_mentions": {"parse": ["everyone", "users"]}})
    assert out["allowed_mentions"] == {"parse": [], "users": []}


def test_long_content_splits_at_line_boundaries_without_loss() -> None:
    lines = [f"line {i:04d} " + "x" * 80 for i in range(100)]
    content = "\n".join(lines)
    out = safe_payload({"content": content})
    assert len(out) > 1
    assert "".join(m["content"] for m in out) == content
    for message in out:
        assert text_length(message["content"]) <= LIMITS["content"]
        assert message["content"].startswith("line ")  # every chunk starts at a line boundary


def test_overlong_line_is_split_at_spaces_then_hard() -> None:
    assert "".join(split_content("word " * 1000)) == "word " * 1000
    assert all(c.endswith(" ") for c in split_content("word " * 1000)[:-1])
    hard = "y" * 4500
    assert [len(c) for c in split_content(hard)] == [2000, 2000, 500]


def test_astral_characters_count_double_and_are_never_cut_in_half() -> None:
    emoji = "😀" * 1500  # 3000 UTF-16 units
    chunks = split_content(emoji)
    assert "".join(chunks) == emoji
    assert all(utf16_units(c) <= 2000 for c in chunks)
    assert truncate("😀" * 200, 256) == "😀" * 127 + ELLIPSIS


def test_lone_surrogates_are_replaced_so_the_body_can_be_encoded() -> None:
    [out] = safe_payload({"content": "bad \ud800 char", "embeds": [{"title": "t\udfff"}]})
    assert out["content"] == "bad ? char"
    assert out["embeds"][0]["title"] == "t?"
    out["content"].encode("utf-8")


def test_code_blocks_stay_balanced_across_splits_and_truncation() -> None:
    log_lines = "\n".join(f"2024-05-01 12:00:{i % 60:02d} ERROR worker crashed #{i}" for i in range(120))
    content = f"Restart report\n```\n{log_lines}\n```\nEnd of report"
    chunks = split_content(content)
    assert len(chunks) > 1
    assert all(chunk.count(FENCE) % 2 == 0 for chunk in chunks)
    assert all(text_length(chunk) <= LIMITS["content"] for chunk in chunks)
    assert chunks[1].startswith(FENCE + "\n")
    unfenced = "".join(chunks).replace("\n" + FENCE + FENCE + "\n", "")
    assert unfenced == content
    value = truncate("```\n" + "x" * 2000 + "\n```", 1024)
    assert value.endswith(ELLIPSIS + "\n" + FENCE)
    assert text_length(value) == 1024


def test_content_first_then_embeds_share_the_last_content_message() -> None:
    out = safe_payload({"content": "a\n" * 1500, "embeds": [{"title": "t"}]})
    assert [("content" in m, "embeds" in m) for m in out] == [(True, False), (True, True)]


def test_overlong_texts_are_truncated_with_ellipsis() -> None:
    embed = {
        "title": "T" * 300,
        "description": "D" * 5000,
        "author": {"name": "A" * 300, "icon_url": "https://example.invalid/a.png"},
        "footer": {"text": "F" * 3000},
        "fields": [{"name": "N" * 300, "value": "V" * 2000, "inline": True}],
    }
    out = safe_payload({"embeds": [embed]})
    first = out[0]["embeds"][0]
    assert first["title"] == "T" * 255 + ELLIPSIS
    assert first["description"] == "D" * 4095 + ELLIPSIS
    assert first["author"] == {"name": "A" * 255 + ELLIPSIS, "icon_url": "https://example.invalid/a.png"}
    assert first["footer"]["text"].endswith(ELLIPSIS)
    fields = [f for m in out for e in m["embeds"] for f in e.get("fields", [])]
    assert fields == [{"name": "N" * 255 + ELLIPSIS, "value": "V" * 1023 + ELLIPSIS, "inline": True}]
    for message in out:
        assert_discord_safe(message, set())


def test_many_fields_and_embeds_are_spread_over_embeds_and_messages() -> None:
    embeds = [
        {"title": f"e{i}", "color": i, "fields": [{"name": f"f{j}", "value": "v" * 500} for j in range(30)]}
        for i in range(12)
    ]
    out = safe_payload({"embeds": embeds})
    seen = [(f["name"]) for m in out for e in m["embeds"] for f in e.get("fields", [])]
    assert seen == [f"f{j}" for _ in range(12) for j in range(30)]  # nothing lost, order kept
    for message in out:
        assert_discord_safe(message, set())
    titles = [e.get("title") for m in out for e in m["embeds"] if "title" in e]
    assert titles == [f"e{i}" for i in range(12)]


def test_empty_fields_get_a_zero_width_space_and_empty_embeds_vanish() -> None:
    [out] = safe_payload(
        {"content": "x", "embeds": [{"fields": [{"name": "", "value": " "}]}, {"title": "  "}]}
    )
    assert out["embeds"] == [{"fields": [{"name": ZWSP, "value": ZWSP}]}]


def test_unknown_keys_dropped_and_common_keys_copied_to_every_part() -> None:
    out = safe_payload({"content": "z\n" * 1200, "username": "rg", "files": ["x"], "components": []})
    assert len(out) == 2
    assert all(m["username"] == "rg" and "files" not in m and "components" not in m for m in out)


@pytest.mark.parametrize("payload", [{}, {"content": "   \n "}, {"embeds": []}, {"embeds": [{"color": 1}]}])
def test_nothing_to_send_is_a_value_error(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="nothing to send"):
        safe_payload(payload)


def test_non_mapping_payload_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="mapping"):
        safe_payload("hello")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# safe_payload: properties
# ---------------------------------------------------------------------------------------------

_SPECIAL = [
    "@everyone",
    "@here",
    "@@everyone",
    "@ here",
    f"<@{USER_A}>",
    f"<@!{USER_B}>",
    "\n",
    " ",
    "😀",
    "é",
]
_pieces = st.one_of(
    st.text(alphabet=st.sampled_from("ab @<>!\n\t😀é\u200b"), max_size=40),
    st.sampled_from(_SPECIAL),
    st.builds(
        lambda chunk, n: chunk * n,
        st.sampled_from(["a", "\n", "b ", "😀", "x\n", "@everyone ", "`"]),
        st.integers(0, 2500),
    ),
)
big_text = st.lists(_pieces, max_size=6).map("".join)
small_text = st.lists(_pieces, max_size=2).map("".join)  # fewer draws: keeps the test fast
fields = st.lists(
    st.fixed_dictionaries({"name": small_text, "value": small_text}, optional={"inline": st.booleans()}),
    max_size=30,
)
embeds = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "title": big_text,
            "description": big_text,
            "fields": fields,
            "footer": st.fixed_dictionaries({"text": small_text}),
            "author": st.fixed_dictionaries({"name": small_text}),
            "color": st.integers(0, 0xFFFFFF),
        },
    ),
    max_size=13,
)
payloads = st.fixed_dictionaries({}, optional={"content": big_text, "embeds": embeds, "username": small_text})


def _strip_marks(text: str) -> str:
    for mark in (ELLIPSIS + "\n" + FENCE, ELLIPSIS):
        if text.endswith(mark):
            return text[: -len(mark)]
    return text


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(payload=payloads, allow=st.lists(st.sampled_from([USER_A, USER_B, "999"]), max_size=3))
def test_safe_payload_always_satisfies_every_limit(payload: dict[str, Any], allow: list[str]) -> None:
    try:
        out = safe_payload(payload, allow_user_ids=allow)
    except ValueError:
        # Only when there is genuinely nothing to send.
        assert not payload.get("content", "").strip()
        assert not any(
            e.get("title", "").strip()
            or e.get("description", "").strip()
            or e.get("fields")
            or e.get("footer", {}).get("text", "").strip()
            or e.get("author", {}).get("name", "").strip()
            for e in payload.get("embeds", [])
        )
        return
    assert out
    for message in out:
        assert_discord_safe(message, set(allow))
        assert safe_payload(message, allow_user_ids=allow) == [message]  # idempotent

    # Content: nothing lost except whitespace-only chunks; mass mentions only gain a ZWSP.
    original = (
        payload.get("content", "").replace("@everyone", f"@{ZWSP}everyone").replace("@here", f"@{ZWSP}here")
    )
    joined = "".join(m.get("content", "") for m in out)
    if FENCE not in original:
        assert re.sub(r"\s", "", joined) == re.sub(r"\s", "", original)
    else:  # plus the fences that close and reopen a code block around each split
        assert re.sub(r"[\s`]", "", joined) == re.sub(r"[\s`]", "", original)
        assert all(m["content"].count(FENCE) % 2 == 0 for m in out[:-1] if "content" in m) or (
            original.count(FENCE) % 2 == 1
        )

    # Fields: every field arrives, in order, as a prefix of the original (ellipsis aside).
    sent_fields = [f for m in out for e in m.get("embeds", []) for f in e.get("fields", [])]
    want_fields = [f for e in payload.get("embeds", []) for f in e.get("fields", [])]
    assert len(sent_fields) == len(want_fields)
    for sent, want in zip(sent_fields, want_fields, strict=True):
        for key in ("name", "value"):
            expected = want[key].replace("@everyone", f"@{ZWSP}everyone").replace("@here", f"@{ZWSP}here")
            if sent[key] == ZWSP and not expected.strip():
                continue
            assert expected.startswith(_strip_marks(sent[key]))
            assert sent[key] == expected or ELLIPSIS in sent[key][-5:]
            assert sent[key].count(FENCE) % 2 == 0 or expected.count(FENCE) % 2 == 1


def test_safe_payload_output_is_accepted_by_the_fake_without_pinging(discord_fake: FakeDiscord) -> None:
    payload = {
        "content": (f"@everyone <@{USER_A}> <@{USER_B}> restart report\n" + "line\n" * 900),
        "embeds": [{"title": "@here " * 100, "fields": [{"name": "n", "value": "v" * 1500}] * 40}] * 3,
    }
    transport = DiscordTransport(discord_fake.url)
    parts = safe_payload(payload, allow_user_ids=[USER_A])
    for part in parts:
        assert transport.send(part) is not None
    assert discord_fake.statuses() == [200] * len(parts)
    assert all(not m["mention_everyone"] for m in discord_fake.messages)
    assert discord_fake.messages[0]["pinged_users"] == [USER_A]
    assert all(m["pinged_users"] == [] for m in discord_fake.messages[1:])


# ---------------------------------------------------------------------------------------------
# DiscordTransport
# ---------------------------------------------------------------------------------------------


def test_send_returns_discords_message_and_uses_wait_true(discord_fake: FakeDiscord) -> None:
    transport = DiscordTransport(discord_fake.url)
    message = transport.send(safe_payload({"content": "hello"})[0])
    assert message is not None
    assert message["content"] == "hello"
    assert message["id"].isdigit()
    assert discord_fake.requests[0].query["wait"] == ["true"]
    assert discord_fake.messages[0]["author"]["username"] == "restartguard"


def test_send_handles_204(discord_fake: FakeDiscord) -> None:
    discord_fake.honour_wait = False
    assert DiscordTransport(discord_fake.url, username=None).send({"content": "x"}) is None
    assert discord_fake.statuses() == [204]
    assert discord_fake.messages[0]["author"]["username"] == "Captain Hook"


def test_files_are_uploaded_as_multipart_attachments(discord_fake: FakeDiscord) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    payload = {"embeds": [{"title": "weekly", "image": {"url": "attachment://chart.png"}}]}
    message = DiscordTransport(discord_fake.url).send(payload, files={"chart.png": png})
    assert message is not None
    assert message["attachments"][0]["filename"] == "chart.png"
    request = discord_fake.requests[0]
    assert request.files == {"chart.png": png}
    assert request.body["attachments"] == [{"id": 0, "filename": "chart.png"}]
    assert request.body["embeds"][0]["image"]["url"] == "attachment://chart.png"


def test_existing_query_parameters_are_kept(discord_fake: FakeDiscord) -> None:
    transport = DiscordTransport(discord_fake.url + "?thread_id=42&wait=false")
    transport.send({"content": "x"})
    assert discord_fake.requests[0].query == {"thread_id": ["42"], "wait": ["true"]}


def test_429_is_transient_with_retry_after_from_body(discord_fake: FakeDiscord) -> None:
    discord_fake.script(RateLimited(0.05), RateLimited(1.5, global_=True))
    transport = DiscordTransport(discord_fake.url)
    with pytest.raises(TransientDiscordError) as first:
        transport.send({"content": "x"})
    assert (first.value.status, first.value.retry_after, first.value.global_limit) == (429, 0.05, False)
    with pytest.raises(TransientDiscordError) as second:
        transport.send({"content": "x"})
    assert (second.value.retry_after, second.value.global_limit) == (1.5, True)
    assert discord_fake.messages == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "3"}, 3.0), ({"X-RateLimit-Reset-After": "0.25"}, 0.25), ({}, 1.0)],
)
def test_429_retry_after_falls_back_to_headers(
    httpserver: HTTPServer, headers: dict[str, str], expected: float
) -> None:
    httpserver.expect_request("/api/webhooks/1/tok-secret-123").respond_with_data(
        "rate limited", status=429, headers=headers
    )
    with pytest.raises(TransientDiscordError) as err:
        DiscordTransport(httpserver.url_for("/api/webhooks/1/tok-secret-123")).send({"content": "x"})
    assert err.value.retry_after == expected


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_transient(discord_fake: FakeDiscord, status: int) -> None:
    discord_fake.script(Status(status), Status(status, retry_after=7))
    transport = DiscordTransport(discord_fake.url)
    with pytest.raises(TransientDiscordError) as hinted:
        transport.send({"content": "x"})
    assert (hinted.value.status, hinted.value.retry_after) == (status, 1.0)
    with pytest.raises(TransientDiscordError) as told:
        transport.send({"content": "x"})
    assert told.value.retry_after == 7.0


def test_over_limit_payload_is_permanent_400(discord_fake: FakeDiscord) -> None:
    with pytest.raises(PermanentDiscordError) as err:
        DiscordTransport(discord_fake.url).send({"content": "x" * 2001})
    assert (err.value.status, err.value.code, err.value.webhook_unusable) == (400, 50035, False)
    assert "2000 or fewer" in str(err.value)


def test_deleted_webhook_is_permanent_404(discord_fake: FakeDiscord) -> None:
    discord_fake.delete_webhook()
    with pytest.raises(PermanentDiscordError) as err:
        DiscordTransport(discord_fake.url).send({"content": "x"})
    assert (err.value.status, err.value.code, err.value.webhook_unusable) == (404, 10015, True)


def test_wrong_token_is_permanent_401(discord_fake: FakeDiscord) -> None:
    with pytest.raises(PermanentDiscordError) as err:
        DiscordTransport(discord_fake.url + "x").send({"content": "x"})
    assert (err.value.status, err.value.webhook_unusable) == (401, True)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/webhooks/1/closed-port-secret-token"


def test_connection_refused_is_transient() -> None:
    with pytest.raises(TransientDiscordError) as err:
        DiscordTransport(_closed_port_url()).send({"content": "x"})
    assert err.value.status is None
    assert "unreachable" in str(err.value)


def test_timeout_is_transient(discord_fake: FakeDiscord) -> None:
    discord_fake.script(Hang())
    with pytest.raises(TransientDiscordError, match="timed out"):
        DiscordTransport(discord_fake.url, timeout=0.2).send({"content": "x"})
    discord_fake.release()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "discord.com/api/webhooks/1/abc",
        "ftp://x/y/secret-token-abc",
        "https://[::1/api/webhooks/1/secret-token-abc",
        "https://discord.com:99999/api/webhooks/1/secret-token-abc",
    ],
)
def test_bad_url_is_permanent_and_not_echoed(url: str) -> None:
    with pytest.raises(PermanentDiscordError) as err:
        DiscordTransport(url)
    assert err.value.status is None
    assert "secret-token" not in str(err.value)


def test_redacted_url_hides_token_and_userinfo() -> None:
    transport = DiscordTransport("https://user:pw@discord.com/api/webhooks/42/secret-token-abc")
    assert transport.redacted_url == "https://discord.com/api/webhooks/42/***"
    assert repr(transport) == "DiscordTransport('https://discord.com/api/webhooks/42/***')"


def test_cooldown_reports_an_empty_bucket() -> None:
    with FakeDiscord(bucket_limit=1, bucket_window=0.3) as fake:
        transport = DiscordTransport(fake.url)
        assert transport.cooldown() == 0.0
        transport.send({"content": "x"})
        assert 0.0 < transport.cooldown() <= 0.3


def test_webhook_url_never_leaks_into_logs_or_errors(
    discord_fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs request paths at DEBUG
    secrets = [discord_fake.token, "closed-port-secret-token"]
    errors: list[DiscordError] = []
    transport = DiscordTransport(discord_fake.url)
    discord_fake.script(RateLimited(0.01), Status(503), Hang())
    for kwargs in ({}, {}, {"timeout": 0.2}):
        with pytest.raises(DiscordError) as err:
            DiscordTransport(discord_fake.url, **kwargs).send({"content": "x"})  # type: ignore[arg-type]
        errors.append(err.value)
    discord_fake.release()
    transport.send({"content": "ok"})
    with pytest.raises(DiscordError) as bad:
        transport.send({"content": "x" * 3000})
    errors.append(bad.value)
    with pytest.raises(DiscordError) as refused:
        DiscordTransport(_closed_port_url()).send({"content": "x"})
    errors.append(refused.value)
    discord_fake.delete_webhook()
    with pytest.raises(DiscordError) as gone:
        transport.send({"content": "x"})
    errors.append(gone.value)
    logging.getLogger("test").debug("transport is %r", transport)

    assert "urllib3" in caplog.text or "127.0.0.1" in caplog.text  # DEBUG logging was really on
    rendered = [caplog.text, repr(transport), str(transport)]
    for error in errors:
        rendered += [str(error), repr(error), "".join(traceback.format_exception(error))]
    for text in rendered:
        for secret in secrets:
            assert secret not in text


def test_session_can_be_injected(discord_fake: FakeDiscord) -> None:
    with requests.Session() as session:
        session.headers["User-Agent"] = "restartguard-test"
        DiscordTransport(discord_fake.url, session=session).send({"content": "x"})
    assert discord_fake.requests[0].headers["User-Agent"] == "restartguard-test"
