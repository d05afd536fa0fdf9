"""The console's start-up holds the cyclic collector and then keeps what start-up made out of later collections."""

import gc

import pytest

from console import memory


@pytest.fixture
def collector():
    was = gc.isenabled()
    yield
    gc.unfreeze()
    if was:
        gc.enable()
    else:
        gc.disable()


def test_a_started_console_freezes_what_start_up_made_and_collects_again(collector):
    gc.enable()
    memory.hold_collection()
    assert not gc.isenabled()
    made = [[] for _ in range(100)]  # start-up's containers: tracked by the collector
    before = gc.get_freeze_count()
    memory.settle_collection()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(made)


def test_an_app_made_in_process_leaves_the_collector_alone(collector):
    gc.enable()
    before = gc.get_freeze_count()
    memory.settle_collection()  # no hold first: a test's App, not the CLI's console
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_a_start_that_ends_early_turns_collection_back_on(collector):
    memory.hold_collection()
    memory.resume_collection()
    assert gc.isenabled()


def test_the_c_library_is_found_without_a_subprocess(monkeypatch):
    """Before the first frame: ctypes.util.find_library ran `ldconfig -p` (15–20 ms); the process's own symbols do."""
    import subprocess

    def refused(*args, **kwargs):
        raise AssertionError("a subprocess was started to find the C library")

    monkeypatch.setattr(subprocess, "Popen", refused)
    monkeypatch.setattr(memory, "_libc", None)
    lib = memory._glibc()
    # routedeck runs on Linux with glibc (the arena calls are glibc's): anywhere else this fails, it never skips
    assert lib is not None, "the process's C library has no malloc_trim/mallopt: not glibc"
    assert hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim")
    memory.limit_arenas()
    memory.give_back()
