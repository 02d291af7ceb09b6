"""One numeric key of the trader's configuration file, read and changed as text (pure, no I/O).

:func:`read_number` and :func:`set_number` change ONE numeric key of a YAML / JSON / .env file,
in place. The YAML edit rewrites only the value on the key's line (comments and layout survive)
and is checked by parsing the result: everything but that key must be unchanged, or the edit is
refused. The receiver uses them to plan a fix; the actuator to re-plan and write it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from restartguard.errors import RestartguardError


class EditError(RestartguardError):
    """The edit cannot be done safely; nothing was written."""


# -- numeric keys in configuration files -----------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def render_number(value: float, integer: bool) -> str:
    if integer or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _lookup(doc: Any, path: list[str]) -> Any:
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise KeyError(".".join(path))
        node = node[key]
    return node


def read_number(text: str, fmt: str, key: str) -> float | None:
    """The current numeric value of ``key`` (dotted), None if absent. EditError if not numeric."""
    path = key.split(".")
    if fmt == "env":
        if len(path) != 1:
            raise EditError(".env files have no nested keys")
        values = _env_values(text)
        if key not in values:
            return None
        num = _number(values[key])
    else:
        doc = _parse(text, fmt)
        try:
            raw = _lookup(doc, path)
        except KeyError:
            return None
        num = _number(raw)
    if num is None:
        raise EditError(f"{key} is not a number in the file")
    return num


def _parse(text: str, fmt: str) -> Any:
    try:
        if fmt == "json":
            return json.loads(text) if text.strip() else {}
        return yaml.safe_load(text) if text.strip() else {}
    except (ValueError, yaml.YAMLError) as exc:
        raise EditError(f"the file is not valid {fmt}: {exc}") from None


def set_number(text: str, fmt: str, key: str, value: float, *, integer: bool) -> str:
    """``text`` with ``key`` set to ``value``; verified by re-parsing."""
    path = key.split(".")
    rendered = render_number(value, integer)
    if fmt == "env":
        if len(path) != 1:
            raise EditError(".env files have no nested keys")
        new = _env_set(text, key, rendered)
        if _number(_env_values(new).get(key)) != float(rendered):
            raise EditError("the edited .env file does not read back the new value")
        return new
    doc = _parse(text, fmt)
    if not isinstance(doc, dict):
        raise EditError("the file's top level is not a mapping")
    expected = json.loads(json.dumps(doc, default=str))
    node = expected
    for part in path[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            raise EditError(f"{key}: the parent mapping does not exist")
        node = node[part]
    node[path[-1]] = int(rendered) if "." not in rendered else float(rendered)
    new = _json_set(doc, path, rendered) if fmt == "json" else _yaml_set(text, path, rendered)
    got = json.loads(json.dumps(_parse(new, fmt), default=str))
    if got != expected:
        raise EditError("the edit would change more than the one key; nothing written")
    return new


def _json_set(doc: dict[str, Any], path: list[str], rendered: str) -> str:
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = json.loads(rendered)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


_YAML_VALUE_RE = re.compile(
    r"""^(?P<pre>[ ]*(?P<key>[A-Za-z_][A-Za-z0-9_-]*|"[^"]*"|'[^']*')[ ]*:[ ]*)"""
    r"""(?P<val>[-+]?[0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|"[-+0-9.]*"|'[-+0-9.]*')?"""
    r"""(?P<post>[ ]*(?:\#.*)?)$"""
)


def _yaml_set(text: str, path: list[str], rendered: str) -> str:
    lines = text.splitlines(keepends=True)
    start, end, parent_indent = 0, len(lines), -1
    for depth, key in enumerate(path):
        child_indent: int | None = None
        found: int | None = None
        block_end = end
        for i in range(start, end):
            line = lines[i]
            body = line.rstrip("\r\n")
            stripped = body.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if body.startswith("---") or body.startswith("..."):
                raise EditError("multi-document YAML is not edited")
            indent = len(body) - len(body.lstrip(" "))
            if indent <= parent_indent:
                block_end = i
                break
            if child_indent is None:
                child_indent = indent
            if indent != child_indent:
                continue
            m = _YAML_VALUE_RE.match(body)
            if m is not None and m.group("key").strip("\"'") == key:
                found = i
                break
        last = depth == len(path) - 1
        if found is None:
            if last and depth == 0:  # a missing top-level key is appended
                sep = "" if not text or text.endswith("\n") else "\n"
                return text + f"{sep}{key}: {rendered}\n"
            raise EditError(f"{'.'.join(path)}: key not found as a plain block mapping entry")
        m = _YAML_VALUE_RE.match(lines[found].rstrip("\r\n"))
        assert m is not None
        if last:
            if m.group("val") is None:
                raise EditError(f"{'.'.join(path)}: not a plain number on its line")
            val = m.group("val")
            new_val = f"{val[0]}{rendered}{val[0]}" if val[0] in "\"'" else rendered
            ending = lines[found][len(lines[found].rstrip("\r\n")) :]
            post = m.group("post") or ""
            if post and not post.startswith(" "):
                post = " " + post
            lines[found] = m.group("pre") + new_val + post + ending
            return "".join(lines)
        if m.group("val") is not None:
            raise EditError(f"{'.'.join(path)}: {key} is not a mapping")
        assert child_indent is not None
        start, end, parent_indent = found + 1, block_end, child_indent
    raise EditError("empty key")


_ENV_LINE_RE = re.compile(r"^(?P<pre>\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*)(?P<val>.*)$")


def _env_values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _ENV_LINE_RE.match(line)
        if m:
            val = m.group("val").strip()
            if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
                val = val[1:-1]
            out[m.group("key")] = val
    return out


def _env_set(text: str, key: str, rendered: str) -> str:
    lines = text.splitlines(keepends=True)
    hit = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            continue
        body = line.rstrip("\r\n")
        m = _ENV_LINE_RE.match(body)
        if m and m.group("key") == key:
            lines[i] = m.group("pre") + rendered + line[len(body) :]
            hit = True
    if not hit:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{key}={rendered}\n")
    return "".join(lines)
