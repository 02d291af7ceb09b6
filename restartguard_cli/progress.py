"""A progress bar for long reads (``restartguard investigate`` over a large log): bytes read of
the total, rate and time left, on stderr, only when stderr is a terminal (never in pipes, files,
cron or systemd). Drawn by tqdm; fed by the classifier's ``progress`` callback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from rootcause.investigation import Progress

#: Seconds of work before the bar appears: a quick run shows nothing.
DEFAULT_DELAY = 1.0


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class ByteProgress:
    """Sums the per-file callbacks into one bar over every file."""

    def __init__(self, bar: tqdm, paths: Sequence[Path]) -> None:
        self.bar = bar
        self.planned = {Path(p): _size(Path(p)) for p in paths}  # file → bytes to read
        self.done: dict[Path, int] = {}

    def __call__(self, path: Path, done: int, total: int) -> None:
        path = Path(path)
        self.planned[path] = total  # reading may start after --since's offset: fewer bytes
        self.bar.total = sum(self.planned.values())
        step = done - self.done.get(path, 0)
        self.done[path] = done
        self.bar.set_postfix_str(path.name, refresh=False)
        self.bar.update(step)


@contextmanager
def terminal_progress(
    paths: Sequence[Path],
    *,
    stream: TextIO | None = None,
    delay: float = DEFAULT_DELAY,
    min_interval: float = 0.2,
) -> Iterator[Progress | None]:
    """A callback drawing a bar over reading ``paths`` when ``stream`` (stderr) is a terminal,
    else ``None`` (nothing drawn, nothing to pay)."""
    out = stream if stream is not None else sys.stderr
    if not paths or not out.isatty():
        yield None
        return
    with tqdm(
        total=sum(_size(Path(p)) for p in paths),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="reading logs",
        file=out,
        delay=delay,
        mininterval=min_interval,
        miniters=1,
        leave=False,
        dynamic_ncols=True,
    ) as bar:
        yield ByteProgress(bar, paths)
