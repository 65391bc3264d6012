"""Exceptions and warnings of the core. Processing wrappers turn them into QgsProcessingException
(errors) and feedback warnings (:func:`warn`)."""
from __future__ import annotations

import contextlib
import threading
import warnings
from typing import Callable, Iterator, Optional


class DeformCastError(Exception):
    """A problem with the user's input or settings. The message says what to change."""


class Cancelled(DeformCastError):
    """The user pressed Cancel. Work in progress is discarded, never left looking complete."""

    def __init__(self, message: str = "Cancelled by the user; no output was written."):
        super().__init__(message)


class MissingDependency(DeformCastError):
    """A Python package the step needs is not installed."""


class DeformCastWarning(UserWarning):
    """Something the user should know about a result that is still written (see :func:`warn`)."""


_SINK = threading.local()


def warn(message: str) -> None:
    """Tell the user about something that does not stop the run but may matter for the result.

    Inside a Processing algorithm (:func:`warnings_to`) the message becomes a feedback warning
    of the run; elsewhere (scripts, tests) it is a Python :class:`DeformCastWarning`. A message
    is shown once per run.
    """
    fn: Optional[Callable[[str], None]] = getattr(_SINK, "fn", None)
    if fn is None:
        warnings.warn(message, DeformCastWarning, stacklevel=2)
        return
    seen = _SINK.seen
    if message in seen:
        return
    seen.add(message)
    fn(message)


@contextlib.contextmanager
def warnings_to(fn: Callable[[str], None]) -> Iterator[None]:
    """Send :func:`warn` messages of this thread to ``fn`` while the block runs."""
    old = (getattr(_SINK, "fn", None), getattr(_SINK, "seen", None))
    _SINK.fn, _SINK.seen = fn, set()
    try:
        yield
    finally:
        _SINK.fn, _SINK.seen = old
