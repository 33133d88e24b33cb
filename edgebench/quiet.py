"""Silence what native libraries write straight to file descriptor 2.

LiteRT's C++ logging prints "INFO: Created TensorFlow Lite XNNPACK delegate"
whenever the host builds an interpreter (calibration, evaluation); it would
land in the middle of progress displays and one-line errors. Python-level
redirection cannot catch it, so the descriptor itself is swapped.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
