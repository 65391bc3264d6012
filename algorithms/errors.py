"""Exceptions of the core. Processing wrappers turn them into QgsProcessingException."""


class DeformCastError(Exception):
    """A problem with the user's input or settings. The message says what to change."""


class Cancelled(DeformCastError):
    """The user pressed Cancel. Work in progress is discarded, never left looking complete."""

    def __init__(self, message: str = "Cancelled by the user; no output was written."):
        super().__init__(message)


class MissingDependency(DeformCastError):
    """A Python package the step needs is not installed."""
