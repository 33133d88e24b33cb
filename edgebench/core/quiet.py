"""Silence what native libraries write straight to file descriptor 2.

LiteRT's C++ logging prints "INFO: Created TensorFlow Lite XNNPACK delegate"
whenever the host builds an interpreter (calibration, evaluation); it would
land in the middle of progress displays and one-line errors. Python-level
redirection cannot catch it, so the descriptor itself is swapped.

Descriptor 2 and sys.stderr belong to the whole process, and a farm or a lab
worker quantizes and evaluates in several threads at once. A plain save/swap/
restore per thread interleaves badly: the second thread saves the first one's
/dev/null and restores it last, and the process's stderr stays silenced for
good (seen: a lab worker's log went quiet after its first job). So the swap is
counted: the first thread in silences, the last one out restores. What the CLI
itself prints goes to a copy of the real stderr taken at start-up
(`real_stderr`), which no silencing touches.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import sys
import threading
import warnings

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_quantizer_lock = threading.Lock()
_real_stderr = None  # (identity of the descriptor it copies, the file)


@contextlib.contextmanager
def native_stderr_silenced():
    global _depth, _saved_fd
    with _lock:
        if _depth == 0:
            sys.stderr.flush()
            _saved_fd = os.dup(2)
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


@contextlib.contextmanager
def library_output_silenced(*ignored_warnings: str):
    """Python-level stderr, warnings and descriptor 2, for one noisy library call. sys.stderr and the warning
    filters are process-wide too, so these calls take turns (they are CPU-bound and use every core anyway)."""
    with (
        _quantizer_lock,
        contextlib.redirect_stderr(io.StringIO()),
        native_stderr_silenced(),
        warnings.catch_warnings(),
    ):
        for message in ignored_warnings:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


def real_stderr():
    """The process's real stderr, even while a thread has descriptor 2 silenced, for the CLI's own messages
    (see the module's docstring): one file over a copy of the descriptor, made again only when descriptor 2
    itself was pointed elsewhere (a test harness capturing each test's output)."""
    global _real_stderr
    with _lock:
        fd = _saved_fd if _saved_fd is not None else 2
        info = os.fstat(fd)
        identity = (info.st_dev, info.st_ino)
        if _real_stderr is None or _real_stderr[0] != identity:
            if _real_stderr is not None:
                _real_stderr[1].close()
            stream = open(os.dup(fd), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8", errors="replace")  # noqa: SIM115
            _real_stderr = (identity, stream)
        return _real_stderr[1]


@atexit.register
def _close_real_stderr() -> None:
    """The copy is closed at exit like any file (a process that ran main() in-process, the tests, else warns)."""
    global _real_stderr
    with _lock:
        if _real_stderr is not None:
            _real_stderr[1].close()
            _real_stderr = None
