"""Discord payload shaping: any message dict the receiver builds → payloads Discord accepts as is.

:func:`safe_payload` turns a message (whose text may come from an alert) into one or more
payloads that each satisfy every documented Discord limit, never ping ``@everyone`` or
``@here``, ping users only when explicitly allowed, and render no link taken from alert text
(masked links and bare URLs are shown as code: :func:`neutralise_links`). Pure functions, no I/O;
sending is :mod:`alert_receiver.discord_transport`'s job.

Reference: Discord developer docs, "Execute Webhook", "Embed Limits", "Allowed Mentions",
"Markdown Text 101" (masked links).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

#: Discord's documented message and embed limits, in characters (see :func:`text_length`).
LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "content": 2000,
        "embeds": 10,  # embeds per message
        "title": 256,
        "description": 4096,
        "fields": 25,  # fields per embed
        "field_name": 256,
        "field_value": 1024,
        "footer": 2048,
        "author_name": 256,
        "embed_total": 6000,  # title+description+field names/values+footer+author, all embeds of a message
        "username": 80,
        "allowed_mention_users": 100,
    }
)

ELLIPSIS: Final = "…"
ZWSP: Final = "\u200b"
FENCE: Final = "```"

#: Top-level keys forwarded to Discord; anything else (files, components, polls, a caller's own
#: ``allowed_mentions``) is dropped because this relay neither needs nor validates it.
_PASSTHROUGH_KEYS: Final = ("username", "avatar_url", "tts", "flags", "thread_name")
#: Embed keys that carry no counted text and are forwarded unchanged.
_EMBED_PLAIN_KEYS: Final = ("url", "timestamp", "color", "image", "thumbnail")
_EMBED_VISIBLE_KEYS: Final = ("title", "description", "fields", "author", "footer", "image", "thumbnail")

_USER_MENTION = re.compile(r"<@!?(\d{15,25})>")


def text_length(text: str) -> int:
    """Length as counted against Discord's limits.

    Discord documents limits in "characters" without saying whether it counts code points or
    UTF-16 code units. We count UTF-16 code units, which is never less than the code-point count,
    so anything that fits by this measure fits by either.
    """
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _prefix_end(text: str, budget: int) -> int:
    """Largest index ``i`` such that ``text[:i]`` fits in ``budget`` units (see text_length),
    never cutting a character in half."""
    if budget <= 0:
        return 0
    if text.isascii():
        return min(len(text), budget)
    units = text.encode("utf-16-le", "surrogatepass")[: 2 * budget]
    # A high surrogate left dangling at the cut is an incomplete sequence: "ignore" drops it.
    return len(units.decode("utf-16-le", "ignore"))


def _valid_unicode(text: str) -> str:
    """Replace lone surrogates (possible in JSON-decoded input) — they cannot be encoded as UTF-8."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def truncate(text: str, limit: int) -> str:
    """``text`` unchanged if it fits in ``limit``, else its longest prefix that fits with '…'
    appended. A code block left open by the cut is closed again ("…\n```") so the rest of the
    message does not render as code."""
    if text_length(text) <= limit:
        return text
    kept = text[: _prefix_end(text, limit - 1)]
    if kept.count(FENCE) % 2 and limit > len(FENCE) + 2:
        kept = text[: _prefix_end(text, limit - 2 - len(FENCE))]
        if kept.count(FENCE) % 2:
            return kept + ELLIPSIS + "\n" + FENCE
    return kept + ELLIPSIS


def neutralise_mass_mentions(text: str) -> str:
    """Insert a zero-width space after '@' in '@everyone'/'@here' so they can never ping.

    Idempotent. ``allowed_mentions.parse == []`` already prevents the ping; this is the second
    line of defence (e.g. a message forwarded or quoted elsewhere without allowed_mentions).
    """
    if "@" not in text:
        return text
    return text.replace("@everyone", "@" + ZWSP + "everyone").replace("@here", "@" + ZWSP + "here")


#: Code (fenced blocks and inline spans): Discord renders no link inside it.
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
#: ``[label](target)`` — Discord renders a masked link in embeds and webhook content.
_MASKED_LINK = re.compile(r"\[([^\[\]\n]*)\]\(\s*<?([^()\s<>]*)>?(?:\s+[^()]*)?\)")
#: What Discord auto-links: a scheme followed by ``://`` (http, https, discord, steam…). A bare
#: ``scheme://`` is taken too: what follows it may be joined to it once code spans are removed.
_BARE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{1,31}://[^\s`<>]*")


def _as_code(url: str) -> str:
    return "`" + url.replace("`", "'") + "`"


def _neutralise_plain(text: str) -> str:
    """``text`` is outside code: any backtick in it is unpaired."""
    if "://" not in text and "](" not in text:
        return text
    # An unpaired backtick would pair with the one opening a URL's code span and leave the URL
    # outside code: it is shown as a quote instead.
    text = text.replace("`", "'")
    # A masked link with no target shows its label only: an empty code span ("``") is no span at
    # all and would unpair the backticks that follow.
    text = _MASKED_LINK.sub(
        lambda m: f"{m.group(1)} ({_as_code(m.group(2))})" if m.group(2) else m.group(1), text
    )
    out: list[str] = []
    pos = 0
    for code in _CODE.finditer(text):  # the spans the masked-link replacement made: keep them
        out.append(_BARE_URL.sub(lambda m: _as_code(m.group(0)), text[pos : code.start()]))
        out.append(code.group(0))
        pos = code.end()
    out.append(_BARE_URL.sub(lambda m: _as_code(m.group(0)), text[pos:]))
    return "".join(out)


def neutralise_links(text: str) -> str:
    """Show every link in ``text`` as code, so that Discord renders none as clickable.

    A masked link ``[click to verify](https://evil.example/login)`` becomes
    ``click to verify (`https://evil.example/login`)`` — the target is visible, not hidden behind
    a label — and a bare URL ``https://x`` becomes ```https://x```. Text already in code (fenced
    blocks, inline spans) is left alone: Discord renders no link there. Idempotent.
    """
    if "://" not in text and "](" not in text:
        return text
    out: list[str] = []
    pos = 0
    for code in _CODE.finditer(text):
        out.append(_neutralise_plain(text[pos : code.start()]))
        out.append(code.group(0))
        pos = code.end()
    out.append(_neutralise_plain(text[pos:]))
    return "".join(out)


def _raw_chunks(text: str, limit: int) -> list[str]:
    chunks: list[str] = []
    rest = text
    while rest:
        if text_length(rest) <= limit:
            chunks.append(rest)
            break
        end = _prefix_end(rest, limit)
        window = rest[:end]
        cut = window.rfind("\n") + 1  # keep the newline with the chunk it ends
        if cut <= 0:
            cut = window.rfind(" ") + 1
        if cut <= 0:
            cut = end
            while 0 < cut < len(rest) and rest[cut - 1] == "`" and rest[cut] == "`":
                cut -= 1  # never split a ``` fence
            if cut == 0:
                cut = end
        chunks.append(rest[:cut])
        rest = rest[cut:]
    return [chunk for chunk in chunks if chunk.strip()]


def split_content(text: str, limit: int = LIMITS["content"]) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` units, preferring line boundaries.

    Concatenating the chunks gives back ``text`` exactly, except that chunks consisting only of
    whitespace are dropped (Discord rejects empty messages) and that a code block (```) spanning
    a split is closed at the end of one chunk ("\n```") and reopened at the start of the next
    ("```\n"). A line longer than ``limit`` is split at its last space within the window, or
    hard at the limit when it has none.
    """
    if text_length(text) <= limit:
        return [text] if text.strip() else []
    if FENCE not in text:
        return _raw_chunks(text, limit)
    reopen, close = FENCE + "\n", "\n" + FENCE
    chunks: list[str] = []
    inside = False
    for raw in _raw_chunks(text, limit - len(reopen) - len(close)):
        chunk = reopen + raw if inside else raw
        if raw.count(FENCE) % 2:
            inside = not inside
        chunks.append(chunk + close if inside else chunk)
    return chunks


def as_text(value: object) -> str:
    """Any value as text that can be encoded as UTF-8."""
    return _valid_unicode(value if isinstance(value, str) else str(value))


def _present(value: object) -> bool:
    """A text value Discord would not consider empty."""
    return value is not None and bool(as_text(value).strip())


def _clean(value: object, limit: int) -> str:
    text = neutralise_links(neutralise_mass_mentions(as_text(value)))
    out = truncate(text, limit)
    # A cut inside a code span would leave the rest of a URL outside code (clickable again):
    # cut before that span instead.
    while out != text and neutralise_links(out) != out:
        out = truncate(out[: max(out.rfind("`"), 0)], limit - 1) + ELLIPSIS
    return out


def _embed_total(embed: Mapping[str, Any]) -> int:
    total = text_length(embed.get("title", "")) + text_length(embed.get("description", ""))
    total += text_length(embed.get("footer", {}).get("text", ""))
    total += text_length(embed.get("author", {}).get("name", ""))
    for field in embed.get("fields", ()):
        total += text_length(field["name"]) + text_length(field["value"])
    return total


def _sanitise_embed(raw: object) -> list[dict[str, Any]]:
    """One input embed → one or more embeds, each within every per-embed limit and within the
    6000-unit total on its own. Fields beyond what fits continue in follow-up embeds that carry
    only the colour and the fields (no field is dropped)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"embed must be a mapping, got {type(raw).__name__}")
    head: dict[str, Any] = {key: copy.deepcopy(raw[key]) for key in _EMBED_PLAIN_KEYS if key in raw}
    if _present(raw.get("title")):
        head["title"] = _clean(raw["title"], LIMITS["title"])
    if _present(raw.get("description")):
        head["description"] = _clean(raw["description"], LIMITS["description"])
    author = raw.get("author")
    if isinstance(author, Mapping) and _present(author.get("name")):
        head["author"] = {k: copy.deepcopy(v) for k, v in author.items() if k != "name"}
        head["author"]["name"] = _clean(author["name"], LIMITS["author_name"])
    footer = raw.get("footer")
    if isinstance(footer, Mapping) and _present(footer.get("text")):
        # Title, author (<= 256 each) and description (<= 4096) always fit the total; the footer
        # gives way if the four together would not.
        room = LIMITS["embed_total"] - _embed_total(head)
        head["footer"] = {k: copy.deepcopy(v) for k, v in footer.items() if k != "text"}
        head["footer"]["text"] = _clean(footer["text"], min(LIMITS["footer"], room))

    fields: list[dict[str, Any]] = []
    for raw_field in raw.get("fields") or ():
        if not isinstance(raw_field, Mapping):
            raise ValueError(f"embed field must be a mapping, got {type(raw_field).__name__}")
        name = _clean(raw_field["name"], LIMITS["field_name"]) if _present(raw_field.get("name")) else ZWSP
        value = (
            _clean(raw_field["value"], LIMITS["field_value"]) if _present(raw_field.get("value")) else ZWSP
        )
        field: dict[str, Any] = {"name": name, "value": value}
        if "inline" in raw_field:
            field["inline"] = bool(raw_field["inline"])
        fields.append(field)

    pieces = [head]
    used = _embed_total(head)
    for field in fields:
        size = text_length(field["name"]) + text_length(field["value"])
        current = pieces[-1]
        if len(current.get("fields", ())) >= LIMITS["fields"] or used + size > LIMITS["embed_total"]:
            current = {"color": head["color"]} if "color" in head else {}
            pieces.append(current)
            used = 0
        current.setdefault("fields", []).append(field)
        used += size
    # Drop pieces with nothing Discord would render (it rejects empty embeds).
    return [piece for piece in pieces if any(key in piece for key in _EMBED_VISIBLE_KEYS)]


def _mentioned_users(content: str, allowed: Iterable[str]) -> list[str]:
    allow = {str(user_id) for user_id in allowed}
    users: list[str] = []
    for match in _USER_MENTION.finditer(content):
        user_id = match.group(1)
        if user_id in allow and user_id not in users:
            users.append(user_id)
    return users[: LIMITS["allowed_mention_users"]]


def safe_payload(payload: Mapping[str, Any], *, allow_user_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Return one or more payloads that each satisfy every Discord limit.

    Contract:

    * Long ``content`` is split at line boundaries (see :func:`split_content`); nothing is lost
      except whitespace-only chunks. Content comes first; the last content chunk shares its
      message with the first embeds.
    * Over-long titles, descriptions, field names/values, footers and author names are truncated
      with '…'. Empty field names/values become a zero-width space (Discord requires both).
    * Embeds are packed in order, at most 10 and at most 6000 counted characters per message; an
      embed with more than 25 fields (or too much text) continues in follow-up embeds.
    * ``allowed_mentions`` is ALWAYS set explicitly to ``{"parse": [], "users": [...]}`` listing
      only the users that appear as ``<@id>`` in that message's content AND are in
      ``allow_user_ids``. Mentions therefore only ever ping from ``content``, never from embeds,
      never roles, never ``@everyone``/``@here`` — which are additionally neutralised with a
      zero-width space in every text.
    * Only ``content``, ``embeds``, ``username``, ``avatar_url``, ``tts``, ``flags`` and
      ``thread_name`` are forwarded (to every resulting message); other keys are dropped.
    * Idempotent: feeding an output back in (with the same ``allow_user_ids``) returns it unchanged.

    Raises ValueError when the payload is not a mapping or has nothing to send (no non-blank
    content, no embeds) — Discord would reject it with 400.
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload must be a mapping, got {type(payload).__name__}")
    common: dict[str, Any] = {}
    for key in _PASSTHROUGH_KEYS:
        if payload.get(key) is not None:
            common[key] = copy.deepcopy(payload[key])
    if "username" in common:
        if _present(common["username"]):
            common["username"] = _clean(common["username"], LIMITS["username"])
        else:
            del common["username"]  # Discord rejects a blank one; the webhook's own name applies

    raw_content = payload.get("content")
    content = (
        neutralise_links(neutralise_mass_mentions(as_text(raw_content))) if raw_content is not None else ""
    )
    chunks = split_content(content)

    raw_embeds = payload.get("embeds") or []
    if isinstance(raw_embeds, Mapping):
        raw_embeds = [raw_embeds]
    if not isinstance(raw_embeds, Sequence) or isinstance(raw_embeds, str):
        raise ValueError("payload 'embeds' must be a list of mappings")
    embeds = [piece for raw in raw_embeds for piece in _sanitise_embed(raw)]

    groups: list[list[dict[str, Any]]] = []
    used = 0
    for embed in embeds:
        size = _embed_total(embed)
        if not groups or len(groups[-1]) >= LIMITS["embeds"] or used + size > LIMITS["embed_total"]:
            groups.append([])
            used = 0
        groups[-1].append(embed)
        used += size

    if not chunks and not groups:
        raise ValueError("payload has nothing to send (no content, no embeds)")

    messages: list[dict[str, Any]] = []
    for chunk in chunks:
        messages.append({"content": chunk})
    for index, group in enumerate(groups):
        if index == 0 and messages:
            messages[-1]["embeds"] = group
        else:
            messages.append({"embeds": group})
    for message in messages:
        message.update(copy.deepcopy(common))
        users = _mentioned_users(message.get("content", ""), allow_user_ids)
        message["allowed_mentions"] = {"parse": [], "users": users}
    return messages
