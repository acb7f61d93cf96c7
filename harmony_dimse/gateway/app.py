"""The gateway: routes HTTP requests on each endpoint's path prefix to DIMSE on its backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import msgspec

from ..data.query import QueryError
from ..http.limits import HTTPLimits
from ..http.response import Response, StreamingResponse
from ..http.server import HTTPServer, Request, start_http_server
from ..net.association import ReceivedInstance
from ..net.errors import DimseFailure
from ..version import __version__
from .backend import Backend
from .config import GatewayConfig
from .errors import RequestError, error_response
from .find import find_response
from .incoming import IncomingStore
from .multipart import (
    closing,
    content_type_params,
    new_boundary,
    part_header,
    preferred,
    split_multipart,
)
from .operations import move_hint, run_echo, run_get, run_move, run_store, stream_get
from .request import OperationRequest, normalize_operation, parse_json_body, parse_operation

log = logging.getLogger("harmony_dimse.gateway")

_encode = msgspec.json.Encoder().encode
_UNKNOWN = object()
_HEALTH_PATHS = ("/healthz", "/health")


class _UnknownOperationPath(Exception):
    """A POST to ``<prefix>/<word>`` where the word names no operation."""


def _blank(body: bytes) -> bool:
    return not body or body.isspace()


_ROUTE_CACHE_SIZE = 1024


def json_response(status: int, obj: Any) -> Response:
    return Response(status, _encode(obj), content_type="application/json")


@dataclass
class Route:
    prefix: str
    pipeline: str
    backend: Backend


class Gateway:
    """All pipelines of one configuration, their backends and the built-in storage SCPs."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        limits: HTTPLimits | None = None,
        worker: int = 0,
        workers: int = 1,
        run_id: str = "",
    ) -> None:
        self.config = config
        self.limits = limits
        self.worker = worker
        self.workers = workers
        self.run_id = run_id
        self.storage = config.storage.path
        self.backends = {name: Backend(b) for name, b in config.backends.items()}
        self.routes: list[Route] = []
        for pipeline in config.pipelines:
            backend = self.backends[pipeline.backends[0]]
            for endpoint in pipeline.endpoints:
                prefix = config.endpoints[endpoint].path_prefix
                self.routes.append(Route(prefix, pipeline.name, backend))
        self.routes.sort(key=lambda r: len(r.prefix), reverse=True)
        self._route_cache: dict[str, Any] = {}
        self.incoming: dict[str, IncomingStore] = {}  # by backend name
        self.http: HTTPServer | None = None
        self._scps: dict[tuple[str, int], IncomingStore] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, reuse_port: bool = False) -> None:
        """Listen for C-MOVE results and for HTTP; on failure nothing is left listening."""
        self.storage.mkdir(parents=True, exist_ok=True)
        try:
            await self._start_listeners(reuse_port)
        except BaseException:
            await self.close()
            raise
        log.info(
            "harmony-dimse %s: HTTP on %s:%d; routes: %s",
            __version__,
            self.config.http.bind_address,
            self.port,
            ", ".join(f"{r.prefix} -> {r.backend.name}" for r in self.routes),
        )

    async def _start_listeners(self, reuse_port: bool) -> None:
        for name, backend in self.backends.items():
            c = backend.config
            key = (c.incoming_store_host, c.incoming_store_port)
            store = self._scps.get(key)
            if store is None:
                store = IncomingStore(
                    c.local_aet,
                    self.storage,
                    worker=self.worker,
                    workers=self.workers,
                    run_id=self.run_id,
                )
                try:
                    await store.start(*key)
                except OSError as exc:
                    raise OSError(
                        f"backend '{name}': cannot listen for C-MOVE results on "
                        f"{key[0]}:{key[1]} (incoming_store_port): {exc.strerror or exc}"
                    ) from None
                self._scps[key] = store
            elif store.ae_title != c.local_aet:
                log.warning(
                    "backends share incoming port %s but not local_aet; C-MOVE to %s goes to %s",
                    key[1],
                    c.local_aet,
                    store.ae_title,
                )
            self.incoming[name] = store
        h = self.config.http
        try:
            self.http = await start_http_server(
                self.handle,
                h.bind_address,
                h.bind_port,
                limits=self.limits or h.limits,
                reuse_port=reuse_port,
            )
        except OSError as exc:
            raise OSError(
                f"[network.{h.network}.http]: cannot listen for HTTP on"
                f" {h.bind_address}:{h.bind_port} (bind_address, bind_port): {exc.strerror or exc}"
            ) from None

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        for backend in self.backends.values():
            await backend.close()
        for store in self._scps.values():
            await store.close()

    @property
    def port(self) -> int:
        assert self.http is not None
        return self.http.port

    # ------------------------------------------------------------------ HTTP

    def route(self, path: str) -> tuple[Route, str] | None:
        found = self._route_cache.get(path, _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        found = None
        for r in self.routes:
            if r.prefix == "/":  # the root endpoint takes every path (longer prefixes come first)
                if path.startswith("/"):
                    found = r, path.strip("/")
                    break
            elif path == r.prefix or path.startswith(r.prefix + "/"):
                found = r, path[len(r.prefix) :].strip("/")
                break
        if len(self._route_cache) < _ROUTE_CACHE_SIZE:
            self._route_cache[path] = found
        return found

    async def handle(self, request: Request) -> Response | StreamingResponse:
        if request.path in _HEALTH_PATHS:
            if request.method not in ("GET", "HEAD"):
                return _method_not_allowed("GET")
            return json_response(
                200, {"status": "ok", "version": __version__, "worker": self.worker}
            )
        found = self.route(request.path)
        if found is None:
            return json_response(
                404,
                {
                    "error": "not found",
                    "message": f"no endpoint at {request.path}",
                    "endpoints": [r.prefix for r in self.routes],
                },
            )
        route, sub = found
        if request.method != "POST":
            return _method_not_allowed("POST")
        try:
            req = self._operation_of(request, route, sub)
            if type(req) is OperationRequest:
                return await self._run(request, req, route)
            media, params = cast(tuple[str, dict[str, str]], req)
            return await self._store(request, route.backend, media, params)
        except _UnknownOperationPath:
            base = "" if route.prefix == "/" else route.prefix
            return json_response(
                404,
                {
                    "error": "not found",
                    "message": f"{request.path}: unknown operation path; POST to"
                    f" {route.prefix} with a JSON body, or to {base}/echo, /find,"
                    " /move, /get or /store",
                },
            )
        except (RequestError, QueryError) as exc:
            status, body = error_response(exc)
            return json_response(status, body)
        except Exception as exc:  # every DICOM failure becomes a 502/504 that says what happened
            status, body = error_response(exc, route.backend)
            if status == 500:
                log.exception("request to %s failed", request.path)
            else:
                log.info("%s %s -> %d: %s", request.method, request.path, status, exc)
            return json_response(status, body)

    def _operation_of(
        self, request: Request, route: Route, sub: str
    ) -> OperationRequest | tuple[str, dict[str, str]]:
        """The operation a request asks for, or for a C-STORE its body's media type and
        parameters; raises RequestError naming what is wrong."""
        operation = None
        if sub:
            try:
                operation = normalize_operation(sub)
            except RequestError:
                raise _UnknownOperationPath from None
        content_type = request.header("content-type")
        params: dict[str, str]
        if content_type is None:
            media, params = "", {}
        elif content_type == "application/json":
            media, params = content_type, {}
        else:
            media, params = content_type_params(content_type)
        dicom_body = media in ("application/dicom", "multipart/related")
        if dicom_body and operation not in (None, "C-STORE"):
            raise RequestError(
                "Content-Type",
                f"{request.path} takes a JSON body; {media} bodies are for C-STORE"
                f" ({route.prefix} or {route.prefix.rstrip('/')}/store)",
                415,
            )
        if operation == "C-STORE" or dicom_body:
            return media, params
        if (
            media
            and media != "application/json"
            and not media.endswith("+json")
            and media != "application/x-www-form-urlencoded"
        ):
            raise RequestError(
                "Content-Type",
                f"{media} is not accepted; send application/json"
                " (or application/dicom / multipart/related for C-STORE)",
                415,
            )
        body = request.body
        obj = parse_json_body(body) if operation is None or not _blank(body) else {}
        req = parse_operation(obj, operation=operation)
        if req.operation == "C-STORE":
            raise RequestError(
                "Content-Type",
                "C-STORE takes the DICOM file itself as the body"
                ' (application/dicom or multipart/related; type="application/dicom")',
                415,
            )
        return req

    async def _run(
        self, request: Request, req: OperationRequest, route: Route
    ) -> Response | StreamingResponse:
        backend = route.backend
        if req.operation == "C-ECHO":
            return json_response(200, await run_echo(backend, req))
        if req.operation == "C-FIND":
            return await find_response(backend, req, accept=request.header("accept") or "")
        if req.operation == "C-MOVE":
            destination = req.destination or backend.local_aet
            if backend.config.dimse_retrieve_mode == "get" and destination == backend.local_aet:
                # retrieving into the gateway itself: C-GET needs no route back from the PACS
                body = await run_get(backend, req, self.storage)
                body.update(operation="C-MOVE", destination=destination, retrieved_with="C-GET")
                return json_response(200 if body["success"] else 502, body)
            try:
                incoming = self.incoming.get(backend.name)
                body = await run_move(backend, req, incoming, self.storage)
            except DimseFailure as exc:
                status, failure = error_response(exc, backend)
                failure["destination"] = destination
                failure["hint"] = move_hint(backend, destination)
                return json_response(status, failure)
            return json_response(200 if body["success"] else 502, body)
        if req.operation == "C-GET":
            accept = request.header("accept") or ""
            if preferred(accept, "multipart/related"):
                return await self._stream_get(backend, req)
            body = await run_get(backend, req, self.storage)
            return json_response(200 if body["success"] else 502, body)
        raise RequestError("operation", f"{req.operation} is not supported here")

    async def _store(
        self, request: Request, backend: Backend, media: str, params: dict[str, str]
    ) -> Response:
        if media == "application/dicom":
            parts = [request.body]
        elif media == "multipart/related":
            kind = params.get("type", "application/dicom").lower()
            if kind != "application/dicom":
                raise RequestError(
                    "Content-Type",
                    f"multipart type {kind!r}; only application/dicom parts are accepted",
                    415,
                )
            parts = [
                content for _, content in split_multipart(request.body, params.get("boundary", ""))
            ]
        else:
            raise RequestError(
                "Content-Type",
                f"{media or 'none'}: C-STORE takes application/dicom or"
                ' multipart/related; type="application/dicom"',
                415,
            )
        if not parts or not any(parts):
            raise RequestError("body", "no DICOM instance in the request body")
        status, body = await run_store(backend, parts)
        return json_response(status, body)

    async def _stream_get(self, backend: Backend, req: OperationRequest) -> StreamingResponse:
        queue: asyncio.Queue[ReceivedInstance | None] = asyncio.Queue(maxsize=4)
        boundary = new_boundary()
        task = asyncio.ensure_future(stream_get(backend, req, queue))
        try:
            first = await queue.get()
        except BaseException:
            task.cancel()
            raise
        if first is None:
            await task  # raises the failure, if any, while a proper status can still be sent

        async def chunks() -> AsyncIterator[bytes]:
            item = first
            try:
                while item is not None:
                    meta = {"Content-Location": f"sop:{item.sop_instance_uid}"}
                    yield part_header(
                        boundary, f"application/dicom; transfer-syntax={item.transfer_syntax}", meta
                    )
                    yield _part10_bytes(item) + b"\r\n"
                    item = await queue.get()
                await task
                yield closing(boundary)
            finally:
                if not task.done():
                    task.cancel()

        return StreamingResponse(
            200,
            chunks(),
            content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        )


def _part10_bytes(inst: ReceivedInstance) -> bytes:
    from ..data.files import part10_bytes
    from ..net.association import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

    return part10_bytes(
        inst.sop_instance_uid,
        inst.sop_class_uid,
        inst.transfer_syntax,
        inst.data,
        implementation_class_uid=IMPLEMENTATION_CLASS_UID,
        implementation_version=IMPLEMENTATION_VERSION_NAME,
    )


def _method_not_allowed(allowed: str) -> Response:
    return Response(
        405,
        _encode({"error": "method not allowed", "message": f"use {allowed}"}),
        headers=[("Allow", allowed)],
        content_type="application/json",
    )


async def run_gateway(
    config: GatewayConfig, *, worker: int = 0, workers: int = 1, run_id: str = ""
) -> None:
    """Start the gateway (one worker of ``workers``) and serve until SIGINT/SIGTERM."""
    gateway = Gateway(config, worker=worker, workers=workers, run_id=run_id)
    await gateway.start(reuse_port=workers > 1)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if worker == 0:
        print(
            f"harmony-dimse gateway listening on http://{config.http.bind_address}:{gateway.port}"
            f" ({', '.join(r.prefix for r in gateway.routes)})"
            + (f" with {workers} worker processes" if workers > 1 else ""),
            flush=True,
        )
    try:
        await stop.wait()
    finally:
        await gateway.close()
