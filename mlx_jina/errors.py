"""Errors users can catch. Every bad input gets one of these with a message naming the problem."""


class MlxJinaError(Exception):
    """Base class for every error mlx-jina raises on purpose."""


class InputError(MlxJinaError, ValueError):
    """Bad arguments to encode(): texts, tasks, dimensions, embedding types."""


class InputTooLongError(InputError):
    """A text is longer than the model's context and truncate=False."""


class ModelLoadError(MlxJinaError):
    """A checkpoint folder, hub id, weight file or adapter is missing or malformed."""
