"""Every error ttc raises on purpose, in one tree.

::

    TTCError
    ├── UserInputError          bad input a person can fix; the CLI prints one line, exits 2
    │   ├── ConfigError         a TOML config or --set override (file and line named)
    │   ├── DatasetError        a dataset file or row (file and line named)
    │   ├── MissingAPIKeyError  the variable named by model.api_key_env is unset
    │   ├── RunConflictError    a run directory holds another model, dataset or prompt
    │   ├── RunLockedError      another process is writing to the run directory
    │   ├── BootstrapSizeError  resamples x problems too many to hold (also a ValueError)
    │   └── StoreError          the run's samples.sqlite cannot be used as it is
    │       ├── StoreCorruptError   not a database, truncated, or not a file
    │       └── StoreVersionError   written by a newer ttc
    ├── StoreWriteError         the disk refused a write (full, I/O error); answers unsaved
    ├── LocalModelError         the local llama.cpp server could not be started
    └── APIError                a model call failed; translated at the provider boundary
        ├── RetryableError      worth another attempt (408, 409, 429, 5xx, 529, network, bad body)
        │   ├── RateLimitError          429
        │   ├── OverloadedError         529 / 503
        │   ├── ServerError             other 5xx, 408, 409
        │   ├── ConnectionFailedError   refused or dropped connection
        │   │   └── StreamCutError      a stream ended before its terminator, or sat idle
        │   ├── RequestTimeoutError     no full answer within timeout_s
        │   └── MalformedResponseError  a body that is not the expected JSON
        └── FatalAPIError       retrying cannot help (400, 401, 403, 404, other 4xx)
            └── RedirectRefusedError  a 3xx: ttc never follows redirects (the key stays home)

Provider modules raise only ``APIError`` subclasses, so the sampler never sees a
transport's own exceptions. ``APIError.output_tokens`` is what a failed attempt
consumed before it failed (as far as a stream showed it), so spend can count waste.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "BootstrapSizeError",
    "ConfigError",
    "ConnectionFailedError",
    "DatasetError",
    "FatalAPIError",
    "LocalModelError",
    "MalformedResponseError",
    "MissingAPIKeyError",
    "OverloadedError",
    "RateLimitError",
    "RedirectRefusedError",
    "RequestTimeoutError",
    "RetryableError",
    "RunConflictError",
    "RunLockedError",
    "ServerError",
    "StreamCutError",
    "StoreCorruptError",
    "StoreError",
    "StoreVersionError",
    "StoreWriteError",
    "TTCError",
    "UserInputError",
    "located",
]


class TTCError(Exception):
    """Base of every error ttc raises on purpose."""


class UserInputError(TTCError):
    """Bad input that a person can fix; the CLI shows ``str(err)`` and exits 2."""


def located(path: object, line: int | None, message: str) -> str:
    """Format ``path:line: message`` (line omitted when unknown)."""
    where = f"{path}:{line}" if line else f"{path}"
    return f"{where}: {message}"


class ConfigError(UserInputError):
    """A config file, or an override, that cannot be used."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        super().__init__(located(path, line, message) if path is not None else message)


class DatasetError(UserInputError):
    """A dataset file or row that cannot be used."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        super().__init__(located(path, line, message) if path is not None else message)


class MissingAPIKeyError(UserInputError):
    """The environment variable that should hold the API key is unset or empty."""


class RunConflictError(UserInputError):
    """A run directory already belongs to a different model, dataset or prompt."""


class RunLockedError(UserInputError):
    """Another live process holds the run directory's writer lock (see ``ttc.lock``)."""


class BootstrapSizeError(UserInputError, ValueError):
    """A problem bootstrap too large to hold in memory (``n_boot x n_problems`` weights);
    refused before anything is allocated, with the largest count that fits."""


class StoreError(UserInputError):
    """A run's store that cannot be opened as it is; the message names the file."""


class StoreCorruptError(StoreError):
    """Not a SQLite database, truncated, or a directory where the file should be."""


class StoreVersionError(StoreError):
    """The run was written by a newer ttc (its schema version is above this one's)."""


class StoreWriteError(TTCError):
    """The disk refused to store answers (full, read-only, I/O error) and kept refusing.

    ``unsaved`` is how many paid answers were still held in memory when ttc gave up.
    """

    def __init__(self, message: str, *, unsaved: int = 0, reason: str = "") -> None:
        self.unsaved = unsaved
        self.reason = reason or message
        super().__init__(message)


class LocalModelError(TTCError):
    """The local llama.cpp server could not be installed, started or reached."""


class APIError(TTCError):
    """A model call failed. ``status`` is the HTTP status, or None for network errors.

    ``output_tokens`` is what the failed attempt consumed before it failed (a stream
    cut after 20k thinking tokens was still billed): the sampler adds it to the
    sample's ``wasted_output_tokens`` and its cost, so spend reflects waste.
    """

    def __init__(
        self, message: str, *, status: int | None = None, output_tokens: int = 0
    ) -> None:
        self.status = status
        self.output_tokens = output_tokens
        super().__init__(message)


class RetryableError(APIError):
    """Another attempt may succeed; ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        output_tokens: int = 0,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, output_tokens=output_tokens)


class RateLimitError(RetryableError):
    """HTTP 429."""


class OverloadedError(RetryableError):
    """HTTP 529 (Anthropic) or 503."""


class ServerError(RetryableError):
    """Other 5xx, 408 or 409."""


class ConnectionFailedError(RetryableError):
    """The connection was refused or dropped before a full response arrived."""


class StreamCutError(ConnectionFailedError):
    """A streamed response stopped before its terminator event, or sent nothing for
    ``sweep.idle_timeout_s``; whatever text it had sent is discarded."""


class RequestTimeoutError(RetryableError):
    """No full response within the per-attempt timeout."""


class MalformedResponseError(RetryableError):
    """The body was not the JSON shape the provider promises."""


class FatalAPIError(APIError):
    """A response that retrying cannot fix: 400, 401, 403, 404 and other 4xx."""


class RedirectRefusedError(FatalAPIError):
    """The endpoint answered with a redirect. Following it would send the API key to
    whatever host the ``location`` names, so ttc stops instead; fix ``base_url``."""
