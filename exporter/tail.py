"""Follow a growing file across rotation, handing out complete lines only.

Rotation by rename (logrotate ``create``): the old file is kept open and drained to its end
(including a final line without newline), then the new file is read from its start.
Rotation by copytruncate: the file shrinks below our offset, or its first bytes change → read
from the start. The position (device, inode, offset, fingerprint of the first bytes) is plain data
(:class:`Position`) so the exporter can persist it atomically with its counters; after an
exporter restart a file rotated in the meantime is found again by its inode and finished first,
and a file under a new inode whose first bytes are the ones read (restored from a backup) is
read on from the same offset.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

HEAD_BYTES = 256
MAX_READ = 16 * 1024 * 1024  # per poll: bounds latency and memory (the unit caps the exporter at 128 MB)
MAX_LINE = 1024 * 1024  # a "line" longer than this without newline is cut and handed out


def _head(fh: IO[bytes], size: int) -> str:
    if size < HEAD_BYTES:
        return ""
    fh.seek(0)
    return hashlib.sha1(fh.read(HEAD_BYTES), usedforsecurity=False).hexdigest()


def _after_last_newline(fh: IO[bytes], lo: int, hi: int, window: int = 64 * 1024) -> int:
    """The offset just after the last newline in bytes [lo, hi) of ``fh``, or -1 when none."""
    pos = hi
    while pos > lo:
        start = max(lo, pos - window)
        fh.seek(start)
        chunk = fh.read(pos - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        if len(chunk) < pos - start:  # shrunk meanwhile
            return -1
        pos = start
    return -1


@dataclass
class Position:
    dev: int = 0
    ino: int = 0
    offset: int = 0
    head: str = ""  # sha1 of the first HEAD_BYTES once the file is that long

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Position | None:
        if not data:
            return None
        return cls(int(data["dev"]), int(data["ino"]), int(data["offset"]), str(data.get("head", "")))


class FileFollower:
    """Reads what was appended to ``path`` since the last call.

    ``read()`` returns bytes that end with a newline (complete lines), possibly empty. Data not
    yet terminated by a newline stays in the file and is read again next time (partial lines are
    never split). ``position`` is the state to persist.
    """

    def __init__(self, path: Path, position: Position | None = None, *, from_end: bool = False) -> None:
        self.path = Path(path)
        self.position = position
        self.from_end = from_end
        self._fh: IO[bytes] | None = None
        self.more = False  # the last read() stopped at its size limit: more is waiting
        self.rotations = 0
        self.truncations = 0

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def is_open(self) -> bool:
        """A file is being followed (False while the path does not exist or cannot be opened)."""
        return self._fh is not None

    # -- opening ---------------------------------------------------------------------------
    def _open_path(self) -> IO[bytes] | None:
        try:
            return self.path.open("rb")
        except FileNotFoundError:
            return None

    def _find_rotated(self, pos: Position) -> IO[bytes] | None:
        """After a restart: the file we were reading, renamed by rotation (same inode)."""
        for cand in sorted(glob.glob(glob.escape(str(self.path)) + "*")):
            try:
                st = os.stat(cand)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (pos.dev, pos.ino) and cand != str(self.path):
                try:
                    return open(cand, "rb")
                except OSError:
                    return None
        return None

    def _ensure_open(self) -> None:
        if self._fh is not None:
            return
        pos = self.position
        fh = self._open_path()
        if fh is None:
            return
        st = os.fstat(fh.fileno())
        if pos is not None and (st.st_dev, st.st_ino) != (pos.dev, pos.ino):
            old = self._find_rotated(pos)
            if old is not None:
                fh.close()
                self._fh = old
                return
            if pos.head and st.st_size >= pos.offset and _head(fh, st.st_size) == pos.head:
                # The same file under a new inode (restored from a backup with the state, moved
                # across file systems): its first bytes are the ones we read. Go on where we were.
                pos = self.position = Position(st.st_dev, st.st_ino, pos.offset, pos.head)
            else:
                pos = None  # the file we knew is gone: start the new one from its beginning
        if pos is None:
            offset = st.st_size if self.from_end else 0
            if self.from_end:
                # Only complete lines count as read.
                offset = self._last_newline_before(fh, st.st_size)
            self.position = Position(st.st_dev, st.st_ino, offset, _head(fh, st.st_size))
        self._fh = fh

    @staticmethod
    def _last_newline_before(fh: IO[bytes], size: int) -> int:
        start = max(0, size - MAX_LINE)
        fh.seek(start)
        tail = fh.read(size - start)
        cut = tail.rfind(b"\n")
        return start + cut + 1 if cut >= 0 else start

    # -- reading ---------------------------------------------------------------------------
    def read(self, max_bytes: int = MAX_READ) -> bytes:
        self.more = False
        self._ensure_open()
        if self._fh is None or self.position is None:
            return b""
        fh = self._fh
        pos = self.position
        missed = b""
        st = os.fstat(fh.fileno())
        if (st.st_dev, st.st_ino) == (pos.dev, pos.ino) or pos.ino == 0:
            if st.st_size < pos.offset or (pos.head and _head(fh, st.st_size) != pos.head):
                # copytruncate (or the file was rewritten in place): what was appended since our
                # last read is only in the copy; finish it there, then start again from the top.
                self.truncations += 1
                missed = self._rest_of_copy(pos)
                pos.offset = 0
                pos.head = ""
        else:
            pos.dev, pos.ino, pos.offset, pos.head = st.st_dev, st.st_ino, 0, ""
        if not pos.head and st.st_size >= HEAD_BYTES:
            pos.head = _head(fh, st.st_size)
        data = missed + self._read_complete(fh, pos.offset, max_bytes)
        pos.offset += len(data) - len(missed)
        if len(data) < max_bytes and self._rotated_away(st):
            # Our file was renamed away and a new one is in place: finish the old one, switch.
            rest = self._read_rest(fh, pos.offset)
            data += rest
            self.close()
            self.rotations += 1
            new = self._open_path()
            if new is not None:
                nst = os.fstat(new.fileno())
                self._fh = new
                self.position = Position(nst.st_dev, nst.st_ino, 0, _head(new, nst.st_size))
                more = self._read_complete(new, 0, max_bytes - len(data))
                self.position.offset += len(more)
                data += more
        return data

    def _rest_of_copy(self, pos: Position) -> bytes:
        """After copytruncate: the bytes past ``pos.offset`` in the rotated copy of our file (a
        sibling such as ``trader.log.1`` that starts with the same bytes and is long enough)."""
        if not pos.head:
            return b""
        for cand in sorted(glob.glob(glob.escape(str(self.path)) + "?*"), key=os.path.getmtime, reverse=True):
            try:
                with open(cand, "rb") as copy:
                    size = os.fstat(copy.fileno()).st_size
                    if size < pos.offset or _head(copy, size) != pos.head:
                        continue
                    return self._read_rest(copy, pos.offset)
            except OSError:
                continue
        return b""

    def _rotated_away(self, st: os.stat_result) -> bool:
        try:
            cur = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed, new file not created yet: keep reading the old one
        return (cur.st_dev, cur.st_ino) != (st.st_dev, st.st_ino)

    def _read_complete(self, fh: IO[bytes], offset: int, max_bytes: int) -> bytes:
        """The complete lines from ``offset``, at most ``max_bytes``, in one read into one buffer:
        where the last line ends is found first by reading backwards a little, so the big read
        is never copied again to drop a partial line."""
        end = min(os.fstat(fh.fileno()).st_size, offset + max(max_bytes, 0))
        if end <= offset:
            return b""
        self.more = self.more or (max_bytes > 0 and end - offset >= max_bytes)
        cut = _after_last_newline(fh, offset, end)
        if cut < 0:
            if end - offset < MAX_LINE:
                return b""
            cut = end  # one enormous line: handed out cut
        fh.seek(offset)
        data = fh.read(cut - offset)
        if cut != end and not data.endswith(b"\n"):  # shrunk meanwhile: complete lines only
            data = data[: data.rfind(b"\n") + 1]
        return data

    @staticmethod
    def _read_rest(fh: IO[bytes], offset: int) -> bytes:
        """Everything left in a finished (rotated) file; a last unterminated line is completed."""
        fh.seek(offset)
        data = fh.read()
        if data and not data.endswith(b"\n"):
            data += b"\n"
        return data
