"""C-FIND answered over HTTP as the matches arrive: one JSON body, or NDJSON, streamed.

Matches are turned into DICOM JSON straight from their encoded bytes and embedded pre-encoded
(``msgspec.Raw``), so no pydicom Dataset is built per match. A small answer (up to
``BUFFERED_MATCHES`` matches) goes out as one fixed-length body; a larger one switches to chunked
streaming without holding every match in memory. The JSON stays valid either way: when the PACS
fails mid-stream the body ends with ``"success": false`` and an ``error`` member.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec
from pydicom import Dataset

from ..data.dicomjson import dataset_bytes_to_json_bytes
from ..dimse.status import describe_status
from ..http.response import Response, StreamingResponse
from ..net.contexts import IMPLICIT_VR_LE
from .backend import Backend
from .errors import error_response, status_json
from .multipart import preferred
from .operations import identifier_for
from .request import OperationRequest

BUFFERED_MATCHES = 64
NDJSON = "application/x-ndjson"
_encode = msgspec.json.Encoder().encode


async def match_bytes(
    backend: Backend, req: OperationRequest, ds: Dataset
) -> AsyncGenerator[bytes, None]:
    """Each match as DICOM JSON bytes, as it arrives; C-CANCEL after ``req.limit`` matches or
    when the consumer stops early (the association goes back to the pool clean)."""
    async with backend.association() as assoc:
        results = assoc.find_raw(ds, model=req.model, priority=req.priority)
        count = 0
        try:
            async for result in results:
                implicit = result.transfer_syntax == IMPLICIT_VR_LE
                yield dataset_bytes_to_json_bytes(result.data, implicit_vr=implicit)
                count += 1
                if req.limit is not None and count >= req.limit:
                    break
        finally:
            await results.aclose()


def _head(req: OperationRequest, backend: Backend, ds: Dataset) -> dict[str, Any]:
    return {
        "operation": "C-FIND",
        "backend": backend.name,
        "remote_aet": backend.aet,
        "host": backend.host,
        "port": backend.port,
        "level": str(ds.QueryRetrieveLevel),
        "model": req.model,
    }


def _tail(req: OperationRequest, count: int) -> dict[str, Any]:
    limited = req.limit is not None and count >= req.limit
    code = 0xFE00 if limited else 0x0000
    return {
        "success": True,
        "status": status_json(describe_status(code, "C-FIND")),
        "count": count,
        "limited": limited,
    }


async def find_response(
    backend: Backend, req: OperationRequest, *, accept: str = ""
) -> Response | StreamingResponse:
    """Run the C-FIND; failures before the first match raise (so they get a proper status)."""
    ds = identifier_for(req)
    matches = match_bytes(backend, req, ds)
    if preferred(accept, NDJSON):
        try:
            first = await anext(matches)
        except StopAsyncIteration:
            return Response(200, b"", content_type=NDJSON)
        except BaseException:
            await matches.aclose()
            raise
        return StreamingResponse(200, _ndjson(first, matches, backend), content_type=NDJSON)

    buffered: list[bytes] = []
    try:
        async for item in matches:
            buffered.append(item)
            if len(buffered) >= BUFFERED_MATCHES:
                break
        else:
            body = {**_head(req, backend, ds), **_tail(req, len(buffered))}
            body["matches"] = [msgspec.Raw(m) for m in buffered]
            return Response(200, _encode(body), content_type="application/json")
    except BaseException:
        await matches.aclose()
        raise
    chunks = _json_stream(buffered, matches, req, backend, ds)
    return StreamingResponse(200, chunks, content_type="application/json")


async def _ndjson(
    first: bytes, rest: AsyncGenerator[bytes, None], backend: Backend
) -> AsyncIterator[bytes]:
    try:
        yield first + b"\n"
        async for item in rest:
            yield item + b"\n"
    except Exception as exc:  # the status line is gone: say it in a last line
        _, failure = error_response(exc, backend)
        yield _encode({"error": failure}) + b"\n"
    finally:
        await rest.aclose()


async def _json_stream(
    buffered: list[bytes],
    rest: AsyncGenerator[bytes, None],
    req: OperationRequest,
    backend: Backend,
    ds: Dataset,
) -> AsyncIterator[bytes]:
    head = _encode(_head(req, backend, ds))
    yield head[:-1] + b',"matches":[' + b",".join(buffered)
    count = len(buffered)
    try:
        async for item in rest:
            yield b"," + item
            count += 1
        tail = _tail(req, count)
    except Exception as exc:  # keep the JSON valid and say what happened
        _, failure = error_response(exc, backend)
        tail = {"success": False, "count": count, "error": failure}
    finally:
        await rest.aclose()
    yield b"]," + _encode(tail)[1:]
