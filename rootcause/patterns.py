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
TIMESTAMP_RE_BYTES = re.compile(
    rb"^(?:\x1b\[[0-9;]*m)?\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}", re.MULTILINE
)

TRACEBACK_START = "Traceback (most recent call last):"
TRACEBACK_CONTINUATIONS = (
    "Traceback (most recent call last)",
    "During handling of the above exception",
    "The above exception was the direct cause",
)
# "  File "/opt/trader/loop.py", line 88, in run_check"; loguru marks the frame that caught the
# exception with "> File ..." (loguru/_better_exceptions.py).
FRAME_RE = re.compile(r'^(?:\s+|> )File "([^"]+)", line (\d+), in (\S+)')
LOGURU_FRAME_PREFIX = "> File "
# rich's tracebacks (structlog's ConsoleRenderer uses rich when it is installed): a box whose top
# border holds "Traceback (most recent call last)", frames "│ /path/file.py:88 in func │", then the
# exception line below the box (rich/traceback.py).
TRACEBACK_HEADER = "Traceback (most recent call last)"
RICH_BOX_CHARS = ("│", "╭", "╰")
RICH_FRAME_RE = re.compile(r"^│ (\S+?):(\d+) in (\S+)")
# Lines inside an ExceptionGroup traceback are prefixed with "  | " (nested: "    | ").
GROUP_PREFIX_RE = re.compile(r"^(?:\s*\|)+ ?")
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

# systemd's messages about a unit, in every wording since v219 (docs/systemd-versions.md has the
# table with the versions and source lines). Structured fields (MESSAGE_ID, EXIT_CODE, EXIT_STATUS,
# UNIT_RESULT, N_RESTARTS, JOB_TYPE, JOB_RESULT) come first; these case-insensitive wordings are the
# fallback for entries without them (v219's lower-case "main process exited", 229-239's
# "Failed with result" without UNIT_RESULT) and for syslog files, which carry text only.
SD_STARTED_RE = re.compile(r"^Started (\S+)")
SD_STOPPING_RE = re.compile(r"^Stopping (\S+)")
# v219 service.c "%s: main process exited, code=%s, status=%i/%s"; v229+ "Main process exited, ..."
SD_EXIT_RE = re.compile(r"main process exited, code=(\w+), status=(\d+)(?:/(\w+))?", re.IGNORECASE)
# v229+ service.c/unit.c "Failed with result '%s'." (UNIT_RESULT= from v240)
SD_RESULT_RE = re.compile(r"failed with result '([\w-]+)'", re.IGNORECASE)
# v219 unit.c "Unit %s entered failed state." and service.c "%s failed."; v229 "Unit entered failed state."
SD_FAILED_STATE_RE = re.compile(r"entered failed state\.|^\S+ failed\.$", re.IGNORECASE)
# v219 "%s stop-sigterm timed out. Killing." / "%s start operation timed out. Terminating.";
# v229+ "State 'stop-sigterm' timed out. Killing." / "Start operation timed out. Terminating." /
# "Stopping timed out. Terminating."; v247+ also "... Aborting." and 'final-sigterm'.
SD_TIMEOUT_RE = re.compile(
    r"(?:state '(?P<quoted>[\w-]+)'|(?P<word>[\w-]+)(?: operation)?) timed out\. "
    r"(?P<action>killing|terminating|aborting|stopping|skipping sigkill)",
    re.IGNORECASE,
)
# States whose timeout kills something other than the main process (a reload or clean helper).
SD_TIMEOUT_IGNORED_STATES = frozenset({"reload", "cleaning"})
# v219 "%s watchdog timeout (limit %s)!"; v229+ "Watchdog timeout (limit %s)!"; not v239+'s
# "Watchdog disabled! Ignoring watchdog timeout (limit %s)!".
SD_WATCHDOG_RE = re.compile(r"(?<!ignoring )watchdog timeout \(limit", re.IGNORECASE)
SD_RUNTIME_RE = re.compile(r"reached runtime time limit", re.IGNORECASE)
# v243+ cgroup.c "A process of this unit has been killed by the OOM killer." (MESSAGE_ID fe6faa94...);
# v247+ "systemd-oomd killed %lu process(es) in this unit." (MESSAGE_ID d989611b...).
SD_OOM_RE = re.compile(r"killed by the OOM killer|systemd-oomd killed \d+ process", re.IGNORECASE)
# v240-v247 unit.c "Succeeded."; v248+ "Deactivated successfully."
SD_CLEAN_RE = re.compile(r"deactivated successfully|(?:^|: )succeeded\.$", re.IGNORECASE)
# v219 "%s holdoff time over, scheduling restart."; v229 "Service hold-off time over, scheduling
# restart."; v239+ "Service RestartSec=%s expired, scheduling restart." and "Scheduled restart job,
# restart counter is at %u." (MESSAGE_ID 5eb03494..., N_RESTARTS=).
SD_RESTART_RE = re.compile(r"scheduled restart job|scheduling restart", re.IGNORECASE)
RESTART_COUNTER_RE = re.compile(r"restart counter is at (\d+)")
# systemd-oomd's own line (v248+ oomd-manager.c): "Killed /system.slice/x.service due to memory ..."
OOMD_KILLED_RE = re.compile(r"^Killed (\S+) due to memory")

# Kernel OOM killer lines.
# Kernel OOM killer lines (mm/oom_kill.c, memcontrol.c): "Out of memory: Kill process N (comm) score
# S or sacrifice child" (<= 5.0), "Out of memory: Killed process N (comm) ..." (5.1+), "Memory cgroup
# out of memory: ...", "oom-kill:constraint=...,task_memcg=/system.slice/x.service,...,pid=N" (4.19+),
# and CentOS 7's (3.10) "Task in /system.slice/x.service killed as a result of limit of ...".
KERNEL_OOM_RE = re.compile(
    r"Out of memory: Kill(?:ed)? process|Memory cgroup out of memory|oom-kill:|invoked oom-killer|"
    r"killed as a result of limit of"
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
MID_OOMD = "d989611b15e44c9dbf31e3c81256e4ed"
MID_JOB_FAILED = "be02cf6855d2428ba40df7e9d022f03d"

SYSTEMD_KILL_RESULTS = frozenset({"timeout", "watchdog"})
OOM_RESULTS = frozenset({"oom-kill"})

# Escape sequences (colours of Python 3.13 tracebacks, loguru, rich): stripped before any matching
# and before signatures are computed.
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text) if "\x1b" in text else text


def ungroup(pattern: str) -> str:
    """Turn capturing groups into non-capturing ones (a group per branch of a big alternation
    disables the regex engine's fast first-character skipping)."""
    return re.sub(r"(?<!\\)\((?!\?)", "(?:", pattern)
