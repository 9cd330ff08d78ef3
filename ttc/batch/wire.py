"""The HTTP side of batch APIs, and the shapes both providers' batches are read into.

``BatchWire`` is the only way batch code talks to a provider: every URL is checked to
be on the configured origin before the key is attached (Anthropic hands back a
``results_url``: one on another host is refused, not fetched), nothing follows a
redirect (the transport's rule), and every error has the key scrubbed out before it
is raised. It sets no deadline of its own: the batch runner wraps each call in
``sweep.timeout_s``; downloads are limited by ``sweep.idle_timeout_s`` of silence only.

``BatchAPI`` is what a provider's batch backend offers (``ttc.batch.anthropic``,
``ttc.batch.openai``); ``BatchState`` and ``Outcome`` are their answers, normalised.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from ttc.batch.ids import Entry, Limits
from ttc.errors import APIError, FatalAPIError
from ttc.http import HTTPResponse, StreamResponse, Transport, Upload
from ttc.providers.responses import (
    Secrets,
    error_for_response,
    parse_json_body,
    scrub_secret,
)

__all__ = ["BatchAPI", "BatchState", "BatchWire", "OffOriginError", "Outcome", "request_counts"]


class OffOriginError(FatalAPIError):
    """A URL the provider handed back points at another origin; the key stays home."""


@dataclass(frozen=True, slots=True)
class BatchState:
    """One poll of a batch, normalised across providers."""

    remote_id: str
    #: the provider's own status word ("in_progress", "ended", "completed", ...)
    status: str
    #: processing is over: results (if any) can be read
    ended: bool
    #: the provider's request counts
    counts: dict[str, int] = field(default_factory=dict)
    #: the whole batch failed (OpenAI ``failed``: its input was refused): why
    failure: str | None = None
    #: where the results are (Anthropic: the results URL; OpenAI: output and error file ids)
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One result line: a response body, or why there is none."""

    custom_id: str
    #: "succeeded" | "errored" | "expired" | "canceled"
    kind: str
    body: dict[str, Any] | None = None
    error: APIError | None = None


class BatchAPI(Protocol):
    """A provider's batch endpoints, as the batch runner uses them."""

    provider: str
    limits: Limits
    wire: BatchWire

    def encode(self, custom_id: str, body: dict[str, Any]) -> bytes:
        """One request as it counts against the batch's byte limit."""

    async def probe(self) -> None:
        """Raise ``FatalAPIError`` (status 404/405) if the server has no batch API."""

    async def submit(self, entries: list[Entry], token: str) -> BatchState:
        """Create a batch of ``entries`` (tagged with ``token`` where the API allows)."""

    async def find(
        self, token: str, created_at: float, requests: int, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The id of a batch created for ``token`` whose create call never answered
        (``exclude``: ids the run already knows)."""

    async def poll(self, remote_id: str) -> BatchState:
        """The batch's status now."""

    def results(self, state: BatchState) -> AsyncGenerator[list[Outcome], None]:
        """The result lines of an ended batch, a list per received chunk."""


class BatchWire:
    """JSON over HTTP to one origin, with its key; see the module docstring."""

    def __init__(
        self,
        transport: Transport,
        *,
        base_url: str,
        headers: Mapping[str, str],
        secret: Secrets,
        provider: str,
        idle_timeout: float | None = 120.0,
    ) -> None:
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.idle_timeout = idle_timeout
        self._headers = dict(headers)
        self._secret = secret
        self._origin = _origin(self.base_url)

    def url(self, path: str) -> str:
        """``path`` under the configured base URL."""
        return self.base_url + path

    def check_origin(self, url: str) -> str:
        """``url`` if it is on the configured origin; else refuse (the key must not go)."""
        if _origin(url) != self._origin:
            raise OffOriginError(
                f"{self.provider}: the batch API pointed at {urlsplit(url).netloc or url!r}, "
                f"not the configured {urlsplit(self.base_url).netloc}; refused, so the API "
                f"key goes only to the configured origin", status=None)
        return url

    def scrub(self, exc: APIError) -> APIError:
        scrub_secret(exc, self._secret)
        return exc

    async def get_json(self, url: str) -> dict[str, Any]:
        return await self._json(lambda: self.transport.get(
            self.check_origin(url), headers=self._plain(), timeout=None), url)

    async def post_json(self, url: str, body: dict[str, Any] | bytes) -> dict[str, Any]:
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self._json(lambda: self.transport.post(
            self.check_origin(url), headers=self._headers, body=payload, timeout=None), url)

    async def upload(self, url: str, file: Upload) -> dict[str, Any]:
        return await self._json(lambda: self.transport.upload(
            self.check_origin(url), headers=self._plain(), file=file, timeout=None), url)

    @contextlib.asynccontextmanager
    async def download(self, url: str) -> AsyncIterator[StreamResponse]:
        """A results file, read as it arrives (``lines()``); an error status raises."""
        try:
            headers = {**self._plain(), "accept": "application/binary"}
            async with self.transport.download(
                self.check_origin(url), headers=headers, idle_timeout=self.idle_timeout
            ) as resp:
                if not 200 <= resp.status < 300:
                    whole = HTTPResponse(resp.status, resp.headers, await resp.read())
                    raise error_for_response(whole, self.provider, url)
                yield resp
        except APIError as exc:
            raise self.scrub(exc) from None

    def _plain(self) -> dict[str, str]:
        """The headers without a JSON content type (GET, multipart)."""
        return {k: v for k, v in self._headers.items() if k.lower() != "content-type"}

    async def _json(self, send: Any, url: str) -> dict[str, Any]:
        try:
            response = await send()
            if not 200 <= response.status < 300:
                raise error_for_response(response, self.provider, url)
            return parse_json_body(response, self.provider)
        except APIError as exc:
            raise self.scrub(exc) from None


def request_counts(batch: dict[str, Any]) -> dict[str, int] | None:
    """A batch object's ``request_counts`` (both APIs name it so), integer entries only;
    None when the provider sent no such object."""
    counts = batch.get("request_counts")
    if not isinstance(counts, dict):
        return None
    return {k: v for k, v in counts.items() if isinstance(v, int)}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port
