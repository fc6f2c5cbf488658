"""The client's HTTP layer: standard library only (``http.client``), one kept-alive connection
per thread, the bearer token on every request, error answers turned into typed errors."""

import http.client
import json as _json
import os
import select
import socket
import threading
import urllib.parse
import urllib.request
from typing import Any, BinaryIO, Dict, Iterator, Mapping, Optional, Tuple, Union

from .errors import AuthError, QuollError, error_from_response

__all__ = ["HttpTransport", "Response", "StreamingResponse", "DEFAULT_TIMEOUT", "segment"]

#: Seconds a request may wait for the server (per connect/read, not in total).
DEFAULT_TIMEOUT = 60.0

Query = Mapping[str, Union[str, int, float, bool, None]]
Body = Union[bytes, bytearray, memoryview, BinaryIO, None]

_IDEMPOTENT = frozenset(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
# A kept-alive connection the server closed meanwhile fails with one of these on reuse.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class Response:
    """A complete answer: status, headers and body bytes."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """A header's value, or None."""
        return self.headers.get(name)

    def json(self) -> Any:
        return _json.loads(self.body) if self.body else None

    def text(self) -> str:
        return self.body.decode("utf-8")


def segment(value: Any) -> str:
    """A value quoted for use as one path segment (``/`` and everything else reserved escaped)."""
    return urllib.parse.quote(str(value), safe="")


def _query_value(value: Union[str, int, float, bool]) -> str:
    # The same spelling as the TypeScript SDK: true/false, not True/False.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class HttpTransport:
    """Sends requests to one Quoll server.

    Each thread keeps one connection open and reuses it; a connection the server closed
    meanwhile is noticed before reuse and replaced. Proxies come from the usual environment
    variables (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``); loopback addresses never use one.
    """

    def __init__(self, base_url: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise QuollError(
                "invalid_request",
                f'Server URL "{base_url}" is not an http:// or https:// URL; give one like http://127.0.0.1:8470.',
            )
        self.base_url = base_url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._local = threading.local()
        self._proxy = self._proxy_for(parts)

    # -- URLs

    def url(self, path: str, query: Optional[Query] = None) -> str:
        """The full URL of an API path."""
        return f"{self.base_url}{self._target(path, query)[len(self._prefix):]}"

    def _target(self, path: str, query: Optional[Query]) -> str:
        target = f"{self._prefix}{path}"
        if query:
            pairs = [(k, _query_value(v)) for k, v in query.items() if v is not None]
            if pairs:
                target += ("&" if "?" in target else "?") + urllib.parse.urlencode(pairs)
        return target

    # -- connections

    @staticmethod
    def _proxy_for(parts: urllib.parse.SplitResult) -> Optional[Tuple[str, int]]:
        host = parts.hostname or ""
        if host in _LOOPBACK or host.startswith("127."):
            return None
        proxies = urllib.request.getproxies()
        proxy = proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            return None
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return (p.hostname or "", p.port or 80) if p.hostname else None

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._scheme == "https":
            import ssl  # only https pays for loading ssl

            context = ssl.create_default_context()
            if self._proxy is not None:
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    self._proxy[0], self._proxy[1], timeout=timeout, context=context, blocksize=65536
                )
                conn.set_tunnel(self._host, self._port)
                return conn
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=context, blocksize=65536
            )
        if self._proxy is not None:
            return http.client.HTTPConnection(self._proxy[0], self._proxy[1], timeout=timeout, blocksize=65536)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout, blocksize=65536)

    def _pooled(self, timeout: float) -> Tuple[http.client.HTTPConnection, bool]:
        """This thread's connection and whether it was used before (else a new one)."""
        conn: Optional[http.client.HTTPConnection] = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            # Readable while idle means the server closed it (EOF) or sent junk: start afresh.
            try:
                readable, _, _ = select.select([conn.sock], [], [], 0)
            except (OSError, ValueError):
                readable = [conn.sock]
            if readable:
                conn.close()
            else:
                conn.timeout = timeout
                conn.sock.settimeout(timeout)
                return conn, True
        if conn is None:
            conn = self._new_connection(timeout)
            self._local.conn = conn
        conn.timeout = timeout
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def close(self) -> None:
        """Closes this thread's connection (others close when their threads end)."""
        self._drop()

    # -- requests

    def _headers(self, content_type: Optional[str], accept: Optional[str], length: Optional[int]) -> Dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token}", "User-Agent": "quoll-python"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        if length is not None:
            headers["Content-Length"] = str(length)
        return headers

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: Body = None,
        content_type: Optional[str] = None,
        accept: Optional[str] = None,
        query: Optional[Query] = None,
        timeout: Optional[float] = None,
    ) -> Response:
        """Sends a request and returns the answer when it is a success; raises a QuollError otherwise."""
        if json is not None:
            body = _json.dumps(json, separators=(",", ":"), allow_nan=False).encode("utf-8")
            content_type = "application/json"
        elif body is not None and content_type is None:
            content_type = "application/octet-stream"
        length: Optional[int] = None
        rewind: Optional[int] = None
        if isinstance(body, (bytes, bytearray, memoryview)):
            length = len(body)
        elif body is not None:
            # A file: its remaining size, and where to rewind to for a retry.
            rewind = body.tell()
            length = os.fstat(body.fileno()).st_size - rewind
        elif method in ("POST", "PUT", "PATCH"):
            length = 0
        headers = self._headers(content_type, accept, length)
        target = self._target(path, query)
        wait = self.timeout if timeout is None else timeout
        for attempt in (0, 1):
            conn, reused = self._pooled(wait)
            try:
                conn.request(method, target, body=body, headers=headers)
            except _STALE:
                self._drop()
                if reused and attempt == 0:
                    # The request never reached a live server: safe to send again.
                    if rewind is not None:
                        body.seek(rewind)  # type: ignore[union-attr]
                    continue
                raise self._unreachable(method, path, "the connection was closed")
            except OSError as err:
                self._drop()
                raise self._os_error(method, path, err, wait)
            try:
                res = conn.getresponse()
                data = res.read()
            except _STALE:
                self._drop()
                if reused and attempt == 0 and method in _IDEMPOTENT:
                    if rewind is not None:
                        body.seek(rewind)  # type: ignore[union-attr]
                    continue
                raise self._unreachable(method, path, "the server closed the connection before answering")
            except OSError as err:
                self._drop()
                raise self._os_error(method, path, err, wait)
            if res.will_close:
                self._drop()
            return self._check(Response(res.status, res.headers, data))
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Sends a request and parses the JSON answer (None for 204)."""
        res = self.send(method, path, **kwargs)
        return None if res.status == 204 else res.json()

    def stream(
        self,
        method: str,
        path: str,
        *,
        accept: Optional[str] = None,
        query: Optional[Query] = None,
        timeout: Optional[float] = None,
    ) -> "StreamingResponse":
        """Opens a request on its own connection and returns the answer unread (for long streams)."""
        wait = self.timeout if timeout is None else timeout
        conn = self._new_connection(wait)
        try:
            conn.request(method, self._target(path, query), headers=self._headers(None, accept, None))
            res = conn.getresponse()
        except OSError as err:
            conn.close()
            raise self._os_error(method, path, err, wait)
        if res.status >= 300:
            data = res.read()
            conn.close()
            self._check(Response(res.status, res.headers, data))
        return StreamingResponse(conn, res)

    # -- errors

    def _check(self, res: Response) -> Response:
        if 200 <= res.status < 300:
            return res
        try:
            parsed = res.json()
        except ValueError:
            parsed = None
        err = error_from_response(res.status, parsed)
        if res.status == 401 and not isinstance(err, AuthError):
            raise AuthError("invalid_token", "The server refused the token.", 401)
        raise err

    def _unreachable(self, method: str, path: str, why: str) -> QuollError:
        return QuollError("internal_error", f"{method} {path} failed before an answer arrived: {why}.", 0)

    def _os_error(self, method: str, path: str, err: OSError, wait: float) -> QuollError:
        if isinstance(err, socket.timeout):
            return QuollError(
                "timeout",
                f"{method} {path} did not answer within {wait:g} s; pass a larger timeout.",
                0,
            )
        if isinstance(err, (ConnectionRefusedError, socket.gaierror)) or getattr(err, "errno", None) in (
            101,  # ENETUNREACH
            113,  # EHOSTUNREACH
        ):
            return QuollError(
                "internal_error",
                f'Cannot reach the Quoll server at {self.base_url} ({err}). Is "quoll server" running?',
                0,
            )
        return QuollError("internal_error", f"{method} {path} failed before an answer arrived: {err}.", 0)


class StreamingResponse:
    """An answer read as it arrives (server-sent events); close it when done."""

    def __init__(self, conn: http.client.HTTPConnection, res: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._res = res
        self.status = res.status
        self.headers = res.headers

    def lines(self) -> Iterator[str]:
        """The body's lines without their line ends, as they arrive; ends when the server closes."""
        while True:
            raw = self._res.readline()
            if not raw:
                return
            yield raw.decode("utf-8").rstrip("\r\n")

    def close(self) -> None:
        self._res.close()
        self._conn.close()

    def __enter__(self) -> "StreamingResponse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
