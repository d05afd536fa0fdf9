"""Keep a console that stays open for days from growing: glibc's per-thread heaps hold on to freed memory.

The console's workers (one thread per read) build large temporary arrays; glibc gives each thread its
own heap ("arena") and keeps what was freed there. Capping the arenas and handing freed pages back
after each look keeps the resident memory flat. Elsewhere than glibc both calls are skipped.

Start-up makes most of the objects the console will ever hold (modules, classes, the simulator's
population): the cyclic garbage collector is held off while they are made and then told to leave them
alone (``gc.freeze``), so neither the first frame nor each later collection re-scans them.
"""

from __future__ import annotations

import gc

M_ARENA_MAX = -8
#: a couple of heaps are enough for the UI thread and one worker at a time
ARENAS = 2

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        import ctypes

        try:
            # the symbols the process already has: the C library whose allocator Python uses. (Not
            # ctypes.util.find_library("c"): it runs `ldconfig -p` in a subprocess, 15–20 ms before the first frame.)
            lib = ctypes.CDLL(None)
            _libc = lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else False
        except OSError:
            _libc = False
    return _libc or None


def limit_arenas() -> None:
    """Call before the first worker thread starts."""
    lib = _glibc()
    if lib is not None:
        lib.mallopt(M_ARENA_MAX, ARENAS)


def give_back() -> None:
    """Return freed heap pages to the system (after a read that built large temporaries)."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)


def hold_collection() -> None:
    """Call first thing when the console starts: no cyclic collection while start-up builds what stays."""
    gc.disable()


def settle_collection() -> None:
    """Call once start-up is done: what it made is kept out of every later collection, which resumes.
    Only after ``hold_collection`` (a console started by the CLI): an App made in-process leaves gc alone."""
    if gc.isenabled():
        return
    gc.freeze()
    gc.enable()


def resume_collection() -> None:
    """Collection back on (when start-up ends without ``settle_collection``, e.g. on bad input)."""
    gc.enable()
