"""``HttpxTransport``: the ``ttc.http`` transport over a caller-owned ``httpx.AsyncClient``
(tests inject ``httpx.MockTransport``; users bring proxies or custom TLS), with the same
three rules as the default aiohttp transport: no deadline of its own, an idle limit for
streams and downloads, and no redirects."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ttc._http_types import HTTPResponse, StreamResponse, Upload
from ttc._http_types import describe as _describe
from ttc._http_types import idle as _idle
from ttc._http_types import late as _late
from ttc.errors import ConnectionFailedError, RequestTimeoutError, StreamCutError

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpxTransport"]


class HttpxTransport:
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

        try:
            resp = await self._client.request(
                method,
                url,
                headers=dict(headers),
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                **content,
            )
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(_late(url, timeout)) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"connection to {url} failed: {_describe(exc)}") from exc
        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        return HTTPResponse(resp.status_code, hdrs, resp.content)

    def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        idle_timeout: float | None,
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]:
        return self._streamed("POST", url, headers, body, idle_timeout)

    def download(
        self, url: str, *, headers: Mapping[str, str], idle_timeout: float | None
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]:
        return self._streamed("GET", url, headers, None, idle_timeout)

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
        try:
            resp = await self._client.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise StreamCutError(_idle(url, idle_timeout)) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"connection to {url} failed: {_describe(exc)}") from exc

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.aiter_bytes():
                    yield chunk
            except httpx.TimeoutException as exc:
                raise StreamCutError(_idle(url, idle_timeout)) from exc
            except httpx.TransportError as exc:
                raise StreamCutError(f"stream from {url} broke: {_describe(exc)}") from exc

        async def read() -> bytes:
            return b"".join([chunk async for chunk in chunks()])

        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        try:
            yield StreamResponse(resp.status_code, hdrs, url=url, chunks=chunks, read=read)
        finally:
            await resp.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
