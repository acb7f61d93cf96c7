"""Hard limits and deadlines of the HTTP/1.1 server, shared by the parser and the connections."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """Every size is in bytes and every timeout in seconds.

    header_timeout: the request head (request line and headers) must be complete this long after its
    first byte arrives; a fresh connection that sends nothing at all is closed silently after it.
    body_timeout: the body may pause at most this long (after the head, or between two pieces of
    it); a large upload over a slow link is not cut off as long as its bytes keep coming.
    keepalive_timeout: an idle keep-alive connection is closed silently after this long.
    write_timeout: a response write blocked by a client that does not read aborts the connection.
    linger_timeout: after an error response the server half-closes and discards what the client
    still sends for at most this long, so the client can read the error before the connection ends.
    """

    max_request_line: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    max_body: int = 64 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 75.0
    max_connections: int = 1024
    write_timeout: float = 60.0
    linger_timeout: float = 2.0
