"""Every error mlx-jina raises on purpose, in one place, all exported from `mlx_jina`.

Each carries a message naming the problem. Catch `MlxJinaError` for all of them; `InputError` is also
a `ValueError`. (How the HTTP server maps them to status codes is `mlx_jina.server.errors`'s job.)
"""


class MlxJinaError(Exception):
    """Base class for every error mlx-jina raises on purpose."""


class InputError(MlxJinaError, ValueError):
    """Bad arguments: texts, tasks, dimensions, embedding types, search options, request fields."""


class InputTooLongError(InputError):
    """A text is longer than the model's context and truncate=False."""


class ModelNotFound(InputError):
    """A server request names a model this server does not serve."""


class NoteNotFound(InputError):
    """A path that is not a note in the knowledge base (the MCP `get` tool reads only indexed notes)."""


class ModelLoadError(MlxJinaError):
    """A checkpoint folder, hub id, weight file or adapter is missing or malformed."""


class SQLiteUnavailableError(MlxJinaError):
    """No SQLite binding on this Python can load sqlite-vec."""


class SchemaError(MlxJinaError):
    """The database was written by a newer mlx-jina, or is not an mlx-jina database."""


class ModelMismatchError(MlxJinaError):
    """The database was indexed with another model, revision, quantization or size."""


class UnreadableFile(MlxJinaError):
    """A file that exists in the scan but cannot become text; `.reason` says why (the indexer
    records it as skipped and goes on, so one broken note never stops a run)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServerBusy(MlxJinaError):
    """The server holds as much queued work as it may; the request can be retried later (HTTP 429)."""


class RequestTooLarge(InputError):
    """A server request larger than the whole queue can ever hold: split it (HTTP 413)."""


class ClientGone(MlxJinaError):
    """A server client disconnected before its answer was ready; its work is dropped."""


class ServerStartError(MlxJinaError, RuntimeError):
    """A `mlx-jina serve` child process exited or did not answer in time (see server.process)."""


class RemoteEmbedderError(MlxJinaError):
    """A remote embedding endpoint (--embed-url) is down, refuses, or answers nonsense; the message
    names the URL and the status. Files already written stay in the index."""


class WouldEmptyIndexError(InputError):
    """An index run would remove every document of a folder that vanished or became empty."""


class DatabaseError(MlxJinaError):
    """The knowledge-base file cannot be used: not a database, corrupt, read-only, disk full..."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: raised where the program was, like Ctrl-C, so open transactions
    roll back (a KeyboardInterrupt, not an Exception: `except Exception` must not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
