"""A raw asyncio HTTP/1.1 server with hard limits; it knows nothing of DICOM."""

from harmony_dimse.http.limits import HTTPLimits
from harmony_dimse.http.parser import (
    BodyChunk,
    HTTPParseError,
    ParserEvent,
    ParserSignal,
    RequestHead,
    RequestParser,
)
from harmony_dimse.http.response import Response, StreamingResponse
from harmony_dimse.http.server import Handler, HTTPServer, Request, start_http_server

__all__ = [
    "BodyChunk",
    "HTTPLimits",
    "HTTPParseError",
    "HTTPServer",
    "Handler",
    "ParserEvent",
    "ParserSignal",
    "Request",
    "RequestHead",
    "RequestParser",
    "Response",
    "StreamingResponse",
    "start_http_server",
]
