"""Silencing descriptor 2 from several threads at once must leave the process's stderr as it found it."""

from __future__ import annotations

import os
import threading

from edgebench.core.quiet import native_stderr_silenced, real_stderr


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def test_overlapping_silencing_in_two_threads_restores_the_real_stderr():
    before = _identity(2)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with native_stderr_silenced():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second():
        a_in.wait(5)
        with native_stderr_silenced():
            b_in.set()
            a_out.wait(5)  # the first thread leaves while this one is still silenced
            seen["during"] = _identity(2)
            seen["real"] = _identity(real_stderr().fileno())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        assert seen["during"] == _identity(devnull)  # still silenced: one thread is inside
    finally:
        os.close(devnull)
    assert seen["real"] == before  # what the CLI prints goes to the real stderr meanwhile
    assert _identity(2) == before  # and the last one out restored it
