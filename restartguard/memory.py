"""Handing memory a long-lived process no longer needs back to the system (Linux, glibc; a no-op
where either is missing)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

MADV_DONTNEED = 4


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def trim_heap() -> bool:
    """Give the C heap's free pages back (glibc's ``malloc_trim``; it keeps them otherwise)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def release_code_pages(library: str | None) -> int:
    """Let the kernel drop the resident pages of a shared library's code that only start-up ran
    (e.g. the configuration's validator): its read-only executable mappings, which are never
    written, so the kernel reloads from the file whatever runs again. Returns the bytes released
    (0 where unsupported or the library is not mapped)."""
    if not library:
        return 0
    target = os.path.realpath(library)
    libc = _libc()
    madvise = getattr(libc, "madvise", None)
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return 0
    if madvise is None:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[1] == "r-xp" and fields[5] == target:
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if madvise(lo, hi - lo, MADV_DONTNEED) == 0:
                released += hi - lo
    return released
