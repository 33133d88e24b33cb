"""The errors a user can cause. Each carries a one-line message for the CLI.

The CLI catches `EdgebenchError` and prints `edgebench: error: <message>` with a
non-zero exit; anything else escaping is a bug in edgebench and keeps its
traceback.
"""

from __future__ import annotations


class EdgebenchError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep messages to one line whatever a wrapped library said.
        super().__init__(" ".join(str(message).split()))


class ModelError(EdgebenchError):
    """A model file is missing, corrupt, not TFLite, or unusable for the request."""


class UnknownModelError(EdgebenchError):
    """Neither a zoo name nor an existing file."""


class DatasetError(EdgebenchError):
    """An evaluation or calibration .npz is missing or malformed."""


class QuantizationError(EdgebenchError):
    """A variant could not be produced; other variants still can."""


class ZooIntegrityError(EdgebenchError):
    """A shipped zoo file does not match its recorded sha256."""


class Cancelled(Exception):
    """A run was told to stop (Ctrl-C or SIGTERM seen by the main thread, or a farm stopping).

    Raised in the thread doing the work when it sees the cancel event at a safe point; the main
    thread's KeyboardInterrupt never reaches a farm's worker threads."""
