"""One table: exception class → cause, with the library each class comes from (pure, no I/O).

A traceback that ended the trader is an ``api_timeout`` when its exception is a client timeout,
``oom`` when it is a memory error, and ``exception`` otherwise. The class decides, not the message:
``websockets.exceptions.ConnectionClosedError: ... keepalive ping timeout`` is a closed connection,
and ``numpy.core._exceptions._ArrayMemoryError: Unable to allocate ...`` is an OOM although its name
only *contains* ``MemoryError``. Classes not in the table fall back to name rules (``…MemoryError``,
``…Timeout…``), then to the rest of the exception chain and the message wording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from restartguard.taxonomy import Cause
from rootcause import patterns as P


@dataclass(frozen=True)
class ExceptionClass:
    name: str  # as Python prints it in the final line of a traceback
    cause: Cause
    library: str  # where the class is defined (distribution, module)


_T, _O, _E = Cause.API_TIMEOUT, Cause.OOM, Cause.EXCEPTION

# Names as tracebacks print them (``type.__module__ + "." + type.__qualname__``, builtins bare).
EXCEPTION_TABLE: tuple[ExceptionClass, ...] = (
    # CPython
    ExceptionClass("TimeoutError", _T, "python builtins (3.3+; asyncio.TimeoutError is it since 3.11)"),
    ExceptionClass("asyncio.exceptions.TimeoutError", _T, "python asyncio/exceptions.py (3.8-3.10)"),
    ExceptionClass("concurrent.futures._base.TimeoutError", _T, "python concurrent/futures/_base.py (<3.11)"),
    ExceptionClass("socket.timeout", _T, "python socket (<3.10; an alias of TimeoutError since)"),
    ExceptionClass("MemoryError", _O, "python builtins"),
    # requests (requests/exceptions.py)
    ExceptionClass("requests.exceptions.ReadTimeout", _T, "requests"),
    ExceptionClass("requests.exceptions.ConnectTimeout", _T, "requests"),
    ExceptionClass("requests.exceptions.Timeout", _T, "requests"),
    # urllib3 (urllib3/exceptions.py)
    ExceptionClass("urllib3.exceptions.ReadTimeoutError", _T, "urllib3"),
    ExceptionClass("urllib3.exceptions.ConnectTimeoutError", _T, "urllib3"),
    ExceptionClass("urllib3.exceptions.TimeoutError", _T, "urllib3"),
    # aiohttp (aiohttp/client_exceptions.py; 3.10 added the two subclasses)
    ExceptionClass("aiohttp.client_exceptions.ServerTimeoutError", _T, "aiohttp"),
    ExceptionClass("aiohttp.client_exceptions.ConnectionTimeoutError", _T, "aiohttp (3.10+)"),
    ExceptionClass("aiohttp.client_exceptions.SocketTimeoutError", _T, "aiohttp (3.10+)"),
    ExceptionClass("aiohttp.ServerTimeoutError", _T, "aiohttp (name as re-exported)"),
    # httpx / httpcore (httpx/_exceptions.py, httpcore/_exceptions.py)
    ExceptionClass("httpx.ReadTimeout", _T, "httpx"),
    ExceptionClass("httpx.ConnectTimeout", _T, "httpx"),
    ExceptionClass("httpx.WriteTimeout", _T, "httpx"),
    ExceptionClass("httpx.PoolTimeout", _T, "httpx"),
    ExceptionClass("httpx.TimeoutException", _T, "httpx"),
    ExceptionClass("httpcore.ReadTimeout", _T, "httpcore"),
    ExceptionClass("httpcore.ConnectTimeout", _T, "httpcore"),
    # ccxt (ccxt/base/errors.py): RequestTimeout is a NetworkError subclass
    ExceptionClass("ccxt.base.errors.RequestTimeout", _T, "ccxt"),
    ExceptionClass("ccxt.base.errors.NetworkError", _E, "ccxt"),
    ExceptionClass("ccxt.base.errors.ExchangeNotAvailable", _E, "ccxt"),
    # websocket-client (websocket/_exceptions.py)
    ExceptionClass("websocket._exceptions.WebSocketTimeoutException", _T, "websocket-client"),
    # websockets (websockets/exceptions.py): a closed connection, whatever its reason text says
    # ("keepalive ping timeout" is the peer not answering pings, not a request timing out).
    ExceptionClass("websockets.exceptions.ConnectionClosedError", _E, "websockets"),
    ExceptionClass("websockets.exceptions.ConnectionClosedOK", _E, "websockets"),
    ExceptionClass("websockets.exceptions.ConnectionClosed", _E, "websockets"),
    # numpy: allocation failures ("Unable to allocate 7.45 GiB for an array with shape ...")
    ExceptionClass("numpy.core._exceptions._ArrayMemoryError", _O, "numpy 1.17-1.26"),
    ExceptionClass("numpy._core._exceptions._ArrayMemoryError", _O, "numpy 2.x"),
    # GPU memory is not the host's: relaxing MemoryMax= would not help
    ExceptionClass("torch.cuda.OutOfMemoryError", _E, "pytorch"),
)

_BY_NAME = {e.name: e for e in EXCEPTION_TABLE}


def exception_class(line: str) -> str:
    """The class name of an exception line (``"KeyError: 'x'"`` → ``"KeyError"``)."""
    m = P.EXCEPTION_LINE_RE.match(line.strip())
    return m.group(1) if m else ""


def class_cause(name: str) -> Cause | None:
    """The cause an exception class stands for, or None when the class says nothing."""
    if not name:
        return None
    entry = _BY_NAME.get(name)
    if entry is not None:
        return entry.cause
    short = name.rsplit(".", 1)[-1]
    if short.endswith("MemoryError"):
        return Cause.OOM
    if "Timeout" in short or short == "timeout":
        return Cause.API_TIMEOUT
    return None


def traceback_cause(exceptions: Sequence[str]) -> Cause:
    """Why a process whose fatal traceback shows ``exceptions`` (in order, the last one ended it) died."""
    if not exceptions:
        return Cause.EXCEPTION
    final = class_cause(exception_class(exceptions[-1]))
    if final is not None:
        return final
    earlier = [class_cause(exception_class(e)) for e in exceptions[:-1]]
    if Cause.OOM in earlier:
        return Cause.OOM
    if Cause.API_TIMEOUT in earlier:
        return Cause.API_TIMEOUT
    text = " ".join(exceptions)
    if P.MEMORY_ERROR_RE.search(text):
        return Cause.OOM
    if P.TIMEOUT_RE.search(text):
        return Cause.API_TIMEOUT
    return Cause.EXCEPTION
