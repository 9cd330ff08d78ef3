"""``HttpxTransport``: the ``ttc.http`` transport over a caller-owned ``httpx.AsyncClient``
(tests inject ``httpx.MockTransport``; users bring proxies or custom TLS), with the same
three rules as the default aiohttp transport: no deadline of its own, an idle limit for
streams and downloads, and no redirects."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ttc._http_types import Failures, HTTPResponse, StreamingVerbs, StreamResponse, Upload

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpxTransport"]


@functools.cache
def _failures() -> Failures:
    import httpx

    return Failures(timeout=(httpx.TimeoutException,), network=(httpx.TransportError,))


class HttpxTransport(StreamingVerbs):
    """Adapter for a caller-owned ``httpx.AsyncClient`` (e.g. with ``httpx.MockTransport``).

    The client's own timeout default (5 s unless configured) and redirect setting are
    overridden on every request.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, timeout: float | None
    ) -> HTTPResponse:
        return await self._send("POST", url, headers, timeout, content=body)

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout: float | None
    ) -> HTTPResponse:
        return await self._send("GET", url, headers, timeout)

    async def upload(
        self, url: str, *, headers: Mapping[str, str], file: Upload, timeout: float | None
    ) -> HTTPResponse:
        plain = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return await self._send(
            "POST", url, plain, timeout, data=dict(file.fields),
            files={file.field: (file.filename, file.content, file.content_type)},
        )

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], timeout: float | None,
        **content: Any,
    ) -> HTTPResponse:
        import httpx

        with _failures().request(url, timeout):
            resp = await self._client.request(
                method,
                url,
                headers=dict(headers),
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                **content,
            )
        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        return HTTPResponse(resp.status_code, hdrs, resp.content)

    @contextlib.asynccontextmanager
    async def _streamed(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        idle_timeout: float | None,
    ) -> AsyncIterator[StreamResponse]:
        import httpx

        # read= is per socket read in httpx: the idle limit; no total (the caller's)
        limits = httpx.Timeout(None, connect=idle_timeout, read=idle_timeout)
        request = self._client.build_request(
            method, url, content=body, headers=dict(headers), timeout=limits
        )
        failures = _failures()
        with failures.opening(url, idle_timeout):
            resp = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            yield failures.streamed(resp.status_code, resp.headers, url=url,
                                    idle_timeout=idle_timeout, body=resp.aiter_bytes)
        finally:
            await resp.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
