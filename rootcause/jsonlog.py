"""One JSON log record (structlog's JSONRenderer, python-json-logger, loguru's ``serialize=True``) →
its time and the text lines a plain log would have shown (pure, no I/O).

A JSON logger puts the whole traceback of ``logger.exception()`` into one field of one line:
structlog's ``format_exc_info`` as text in ``exception``, its ``dict_tracebacks`` as a list of
stacks (``exc_type``, ``exc_value``, ``frames``), python-json-logger in ``exc_info``, loguru in the
formatted ``text``. The lines come out in the order a plain traceback prints them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rootcause import patterns as P

TIME_KEYS = ("timestamp", "time", "ts", "@timestamp", "asctime", "datetime")
MESSAGE_KEYS = ("event", "message", "msg")
LEVEL_KEYS = ("level", "levelname", "log.level", "severity")
EXCEPTION_KEYS = ("exception", "exc_info", "exc_text", "traceback", "stack_info")


def _text_lines(value: Any) -> list[str]:
    return [P.strip_ansi(line) for line in value.rstrip("\n").split("\n")] if isinstance(value, str) else []


def _stack_lines(stacks: list[Any]) -> list[str]:
    """structlog's dict_tracebacks: stacks from the exception raised back through its causes."""
    out: list[str] = []
    for stack in reversed(stacks):
        if not isinstance(stack, dict):
            continue
        if out:
            out += ["", "The above exception was the direct cause of the following exception:", ""]
        out.append(P.TRACEBACK_START)
        for frame in stack.get("frames") or []:
            if isinstance(frame, dict):
                out.append(
                    f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}'
                )
        exc_type, exc_value = stack.get("exc_type") or "Exception", stack.get("exc_value")
        out.append(f"{exc_type}: {exc_value}" if exc_value not in (None, "") else str(exc_type))
    return out


def _time(value: Any) -> datetime | str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, dict):  # loguru: {"repr": "...", "timestamp": 1773129600.1}
        return _time(value.get("timestamp"))
    return value if isinstance(value, str) else None


def json_record(line: str) -> tuple[datetime | str | None, list[str]] | None:
    """(time — aware, or text to parse as a timestamp, or None; the record's lines), or None when the
    line is not a JSON log record."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    record = obj.get("record") if isinstance(obj.get("record"), dict) else None
    if isinstance(obj.get("text"), str) and record is not None:  # loguru serialize=True
        return _time(record.get("time")), _text_lines(obj["text"])
    message = next((obj[k] for k in MESSAGE_KEYS if isinstance(obj.get(k), str)), None)
    if message is None or not any(k in obj for k in (*TIME_KEYS, *LEVEL_KEYS)):
        return None  # not a log record (e.g. an exchange's JSON response printed on its own line)
    lines = _text_lines(message)
    for key in EXCEPTION_KEYS:
        value = obj.get(key)
        if isinstance(value, list):
            lines += _stack_lines(value)
        else:
            lines += _text_lines(value)
    when = next((_time(obj[k]) for k in TIME_KEYS if k in obj), None)
    return when, lines
