"""Progress and cancel plumbing between the core and its callers.

The core never sees QgsProcessingFeedback: wrappers hand it a :class:`Progress` built from
three plain callables. Nested steps take ``progress.sub(a, b)`` so each reports 0..1 of its
own work and the user sees one monotone bar.
"""
from __future__ import annotations

from typing import Callable, Optional

from .errors import Cancelled


class Progress:
    def __init__(
        self,
        on_progress: Optional[Callable[[float], None]] = None,
        is_cancelled: Optional[Callable[[], bool]] = None,
        on_log: Optional[Callable[[str], None]] = None,
        start: float = 0.0,
        end: float = 1.0,
    ):
        self._on_progress = on_progress
        self._is_cancelled = is_cancelled
        self._on_log = on_log
        self.start = start
        self.end = end

    # --- reporting -------------------------------------------------------------------------
    def set(self, fraction: float) -> None:
        """Report ``fraction`` (0..1) of this step's work; also checks for Cancel."""
        f = min(1.0, max(0.0, float(fraction)))
        if self._on_progress is not None:
            self._on_progress(100.0 * (self.start + f * (self.end - self.start)))
        self.check()

    def log(self, message: str) -> None:
        if self._on_log is not None:
            self._on_log(message)

    # --- cancel ----------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return bool(self._is_cancelled and self._is_cancelled())

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self.cancelled:
            raise Cancelled()

    # --- nesting ---------------------------------------------------------------------------
    def sub(self, a: float, b: float) -> "Progress":
        """A child whose 0..1 maps onto ``a..b`` of this step."""
        span = self.end - self.start
        return Progress(self._on_progress, self._is_cancelled, self._on_log,
                        self.start + a * span, self.start + b * span)


def silent() -> Progress:
    """A Progress that reports nothing and is never cancelled (scripts, tests)."""
    return Progress()
