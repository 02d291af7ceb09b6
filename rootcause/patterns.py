"""Regular expressions that recognise what a log or journal line says.

Kept in one place so the exporter (streaming) and the investigator (offline) classify the
same text the same way. Timeout and OOM wording follows the cause taxonomy in the design.
"""

from __future__ import annotations

import re

# A log record starts with a timestamp: "2026-09-03 22:15:01,000", ISO 8601 with "T", an
# optional fraction and an optional offset; optionally inside "[...]".
TIMESTAMP_RE = re.compile(
    r"^\[?(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:[,.](\d{1,9}))?\s?(Z|[+-]\d{2}:?\d{2})?"
)
TIMESTAMP_RE_BYTES = re.compile(rb"^\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}", re.MULTILINE)

TRACEBACK_START = "Traceback (most recent call last):"
TRACEBACK_CONTINUATIONS = (
    "Traceback (most recent call last)",
    "During handling of the above exception",
    "The above exception was the direct cause",
)
# "  File "/opt/trader/loop.py", line 88, in run_check"
FRAME_RE = re.compile(r'^\s+File "([^"]+)", line (\d+), in (\S+)')
# An exception line: "KeyError: 'x'", "requests.exceptions.ReadTimeout: ...", "MemoryError".
EXCEPTION_LINE_RE = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")

# api_timeout: timeouts raised by exchange/API clients (requests, urllib3, ccxt, aiohttp, asyncio).
TIMEOUT_RE = re.compile(
    r"ReadTimeout|ConnectTimeout|ConnectTimeoutError|ReadTimeoutError|RequestTimeout|"
    r"TimeoutError|socket\.timeout|ServerTimeoutError|TimeoutException|timed out|Timeout exceeded"
)
MEMORY_ERROR_RE = re.compile(r"\bMemoryError\b|Cannot allocate memory|std::bad_alloc")
# Shutdown requests the trader itself logs.
SIGTERM_RE = re.compile(r"SIGTERM|signal 15\b|Terminated by signal|シャットダウン")
PID_RE = re.compile(r"\bpid[=:\s]\s*(\d+)", re.IGNORECASE)

# systemd's messages about a unit (text fallbacks for journals without MESSAGE_ID).
SD_STARTED_RE = re.compile(r"^Started (\S+)")
SD_STOPPING_RE = re.compile(r"^Stopping (\S+)")
SD_EXIT_RE = re.compile(r"Main process exited, code=(\w+), status=(\d+)(?:/(\w+))?")
SD_RESULT_RE = re.compile(r"Failed with result '([\w-]+)'")
SD_TIMEOUT_RE = re.compile(r"State '([\w-]+)' timed out\. (Killing|Terminating|Aborting)")
SD_WATCHDOG_RE = re.compile(r"Watchdog timeout")
SD_RUNTIME_RE = re.compile(r"Service reached runtime time limit")
SD_OOM_RE = re.compile(r"killed by the OOM killer|Out of memory|oom-kill")
SD_CLEAN_RE = re.compile(r"Deactivated successfully|Succeeded\.$")
SD_RESTART_RE = re.compile(r"Scheduled restart job")

# Kernel OOM killer lines.
KERNEL_OOM_RE = re.compile(
    r"Out of memory: Kill(?:ed)? process|Memory cgroup out of memory|oom-kill:|invoked oom-killer"
)
KERNEL_OOM_PID_RE = re.compile(r"(?:Killed process|Kill process|,pid=)\s*(\d+)")

# MESSAGE_IDs systemd uses for unit lifecycle messages (catalog IDs).
MID_STARTED = "39f53479d3a045ac8e11786248231fbf"
MID_STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
MID_STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"
MID_STOPPED = "9d1aaa27d60140bd96365438aad20286"
MID_EXIT = "98e322203f7a4ed290d09fe03c09fe15"
MID_FAILED = "d9b373ed55a64feb8242e02dbe79a49c"
MID_SUCCESS = "7ad2d189f7e94e70a38c781354912448"
MID_RESTART = "5eb03494b6584870a536b337290809b3"
MID_OOM = "fe6faa94e7774663a0da52717891d8ef"
MID_CONSUMED = "ae8f7b866b0347b9af31fe1c80b127c0"

SYSTEMD_KILL_RESULTS = frozenset({"timeout", "watchdog"})


def ungroup(pattern: str) -> str:
    """Turn capturing groups into non-capturing ones (a group per branch of a big alternation
    disables the regex engine's fast first-character skipping)."""
    return re.sub(r"(?<!\\)\((?!\?)", "(?:", pattern)
