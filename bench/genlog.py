"""Generate a realistic trader log (the Bitget bot's Python-logging format) with known restarts.

Each 6-second check cycle writes ~8 lines (ticker, indicators, exchange calls, position, risk, the
``check #N`` line); every ~25 cycles an order (filled, sometimes failed); now and then a handled
error (a timeout that is retried, a logged traceback followed by a retry). Rarely the process dies
(fatal traceback, API timeout, MemoryError, SIGTERM, or silently) and a new one logs its banner
``Bot booting, version 3.2.1, pid=N`` with the check counter back at 1.

The ground truth (every restart's time, cause and last check) is written next to the log as
``<log>.truth.json`` so benchmarks can check that the fast paths still count exactly.

    python bench/genlog.py bench/out/trader-1g.log --bytes 1000000000
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CYCLE_MS = 6000
BYTES_PER_CYCLE = 700  # about what a cycle writes, to place the log's end before now


def default_start(target_bytes: int) -> datetime:
    """A start such that the log ends about a day before now: an exporter reading it sees history,
    never lines from the future (which it would keep waiting on)."""
    span = timedelta(milliseconds=target_bytes / BYTES_PER_CYCLE * CYCLE_MS) + timedelta(days=1)
    start = datetime.now(UTC) - span
    return start.replace(hour=22, minute=15, second=1, microsecond=0)


BANNER = "Bot booting, version 3.2.1, pid={pid}"
DEATHS = ("exception", "api_timeout", "oom", "manual", "other")


@dataclass
class Truth:
    restarts: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    checks: int = 0
    trades_ok: int = 0
    trades_failed: int = 0
    first_at: str = ""
    last_at: str = ""
    last_check: int = 0


class Stamp:
    """Fast ``YYYY-mm-dd HH:MM:SS,mmm`` from epoch milliseconds (strftime once per second)."""

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def __call__(self, ms: int) -> str:
        sec = ms // 1000
        if sec != self._sec:
            self._sec = sec
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
        return f"{self._text},{ms % 1000:03d}"


def _traceback(rng: random.Random, final: str) -> list[str]:
    frames = [
        ("/opt/trader/main.py", 212, "main", "result = self.step()"),
        ("/opt/trader/loop.py", 88, "run_check", "balance = self.exchange.fetch_balance()"),
        ("/opt/trader/exchange.py", 141, "fetch_balance", "r = self.session.get(url, timeout=10)"),
    ]
    out = ["Traceback (most recent call last):"]
    for path, line, fn, code in frames[: rng.randint(2, 3)]:
        out.append(f'  File "{path}", line {line}, in {fn}')
        out.append(f"    {code}")
    out.append(final)
    return out


FINALS = {
    "exception": ["KeyError: 'availableBalance'", "ValueError: could not convert string to float: ''"],
    "api_timeout": [
        "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.bitget.com', port=443): "
        "Read timed out. (read timeout=10)",
        "ccxt.base.errors.RequestTimeout: bitget GET https://api.bitget.com/api/v2/mix/market/ticker",
    ],
    "oom": ["MemoryError"],
}


def generate(
    path: Path, target_bytes: int, *, seed: int = 7, restart_every: int = 5000, start: datetime | None = None
) -> Truth:
    """Write ``path`` (about ``target_bytes``) and return the ground truth."""
    rng = random.Random(seed)
    stamp = Stamp()
    truth = Truth()
    ms = int((start or default_start(target_bytes)).timestamp() * 1000)
    pid = 4000
    check = 0
    written = 0
    buf: list[str] = []
    buf_len = 0
    price = 64000.0
    balance = 1250.0
    lifetime_started = False

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", encoding="utf-8", newline="\n") as out:

        def emit(text: str, lvl: str = "INFO", logger: str = "trader") -> None:
            nonlocal buf_len
            line = f"{stamp(ms)} - {logger} - {lvl} - {text}\n"
            buf.append(line)
            buf_len += len(line)
            truth.lines += 1

        def raw(text: str) -> None:
            nonlocal buf_len
            buf.append(text + "\n")
            buf_len += len(text) + 1
            truth.lines += 1

        def boot() -> None:
            nonlocal pid, check, lifetime_started
            pid += rng.randint(3, 900)
            emit(BANNER.format(pid=pid))
            emit("config loaded: symbol=BTCUSDT leverage=3 api_timeout=10s retries=3")
            emit("connected to Bitget (mix v2), server time skew 12ms", logger="exchange")
            check = 0
            lifetime_started = True

        boot()
        truth.first_at = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
        cycle = 0
        while written + buf_len < target_bytes:
            cycle += 1
            ms += CYCLE_MS + rng.randint(-40, 40)
            price *= 1 + rng.uniform(-0.0015, 0.0015)
            bid, ask = price - 0.5, price + 0.5
            emit(f"fetch ticker BTCUSDT last={price:.1f} bid={bid:.1f} ask={ask:.1f}", "DEBUG", "exchange")
            ms += rng.randint(80, 200)
            emit(f"GET /api/v2/mix/account/accounts 200 in {rng.randint(60, 400)}ms", "DEBUG", "exchange")
            ms += rng.randint(80, 200)
            emit(
                f"indicators rsi={rng.uniform(20, 80):.1f} macd={rng.uniform(-0.05, 0.05):.4f} "
                f"ema20={price * 0.999:.1f} ema50={price * 0.997:.1f}"
            )
            emit(f"signal=hold confidence={rng.random():.2f}")
            ms += rng.randint(50, 150)
            emit(
                f"GET /api/v2/mix/position/all-position 200 in {rng.randint(60, 400)}ms", "DEBUG", "exchange"
            )
            emit(f"position BTCUSDT long size=0.010 entry={price * 0.99:.1f} upl={rng.uniform(-20, 20):.2f}")
            emit(f"exposure={rng.uniform(0.05, 0.3):.2f} max=0.30 ok", "DEBUG", "risk")
            check += 1
            balance += rng.uniform(-1, 1)
            emit(f"check #{check} balance={balance:.2f} USDT positions=1 rss={rng.randint(290, 340)}MB")
            truth.checks += 1
            truth.last_check = check

            r = rng.random()
            if r < 0.04:
                side = rng.choice(("buy", "sell"))
                ms += rng.randint(100, 300)
                emit(f"placing order BTCUSDT {side} size=0.010 type=market")
                ms += rng.randint(100, 900)
                if rng.random() < 0.1:
                    emit("order failed: code=43012 insufficient balance", "WARNING")
                    truth.trades_failed += 1
                else:
                    emit(f"order filled: BTCUSDT {side} 0.010 @ {price:.1f} id={rng.getrandbits(40)}")
                    truth.trades_ok += 1
            elif r < 0.05:
                ms += rng.randint(10_000, 11_000)
                emit("GET /api/v2/mix/market/ticker timed out after 10s, retrying in 2s", "WARNING")
            elif r < 0.052:
                ms += rng.randint(100, 900)
                emit("fetch positions failed", "ERROR")
                for ln in _traceback(rng, rng.choice(FINALS["exception"])):
                    raw(ln)
                ms += 2000
                emit("recovered, will retry in 5s", "WARNING")

            if lifetime_started and rng.random() < 1 / restart_every:
                cause = rng.choice(DEATHS)
                last = check
                ms += rng.randint(200, 3000)
                if cause in FINALS:
                    emit("Unhandled exception in main loop", "ERROR")
                    for ln in _traceback(rng, rng.choice(FINALS[cause])):
                        raw(ln)
                elif cause == "manual":
                    emit("received SIGTERM, shutting down gracefully", "WARNING")
                    emit("open orders cancelled, state saved, bye")
                ms += rng.randint(5_000, 20_000)
                boot()
                truth.restarts.append(
                    {
                        "at": datetime.fromtimestamp(ms / 1000, UTC).isoformat(),
                        "cause": cause,
                        "last_check": last,
                    }
                )
            if buf_len >= 1 << 20:
                out.write("".join(buf))
                written += buf_len
                buf.clear()
                buf_len = 0
        out.write("".join(buf))
        written += buf_len
    truth.last_at = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
    tmp.replace(path)
    truth_path(path).write_text(json.dumps(truth.__dict__, indent=1))
    return truth


def truth_path(log: Path) -> Path:
    return log.with_name(log.name + ".truth.json")


def ensure(path: Path, target_bytes: int, **kw: int) -> Truth:
    """Reuse ``path`` if it and its truth file exist (and are about the right size)."""
    tp = truth_path(path)
    if path.exists() and tp.exists() and path.stat().st_size >= target_bytes * 0.99:
        return Truth(**json.loads(tp.read_text()))
    return generate(path, target_bytes, **kw)


def time_of(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def naive(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def shift(at: datetime, seconds: float) -> datetime:
    return at + timedelta(seconds=seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", type=Path)
    ap.add_argument("--bytes", type=int, default=1_000_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    t = time.perf_counter()
    truth = generate(args.path, args.bytes, seed=args.seed)
    print(
        f"{args.path}: {args.path.stat().st_size / 1e6:.0f} MB, {truth.lines:,} lines, "
        f"{len(truth.restarts)} restarts, {time.perf_counter() - t:.1f} s"
    )


if __name__ == "__main__":
    main()
