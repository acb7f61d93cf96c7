"""The JSON body of POST /trigger-dicom (and Harmony's /echo|find|move|get forms), validated."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from pydicom.datadict import keyword_dict

from .errors import RequestError

OPERATIONS = ("C-ECHO", "C-FIND", "C-MOVE", "C-GET", "C-STORE")
_ALIASES = {op.replace("-", "").lower(): op for op in OPERATIONS} | {
    op[2:].lower(): op for op in OPERATIONS
}
_NORMALIZED: dict[object, str] = {}  # spellings seen -> operation
KNOWN_FIELDS = {
    "operation",
    "level",
    "query",
    "model",
    "destination",
    "limit",
    "identifier",
    "priority",
}


@dataclass(slots=True)
class OperationRequest:
    operation: str
    level: str | None = None
    model: str = "STUDY"
    query: dict[str, Any] = field(default_factory=dict)
    destination: str | None = None
    limit: int | None = None
    priority: int = 0
    dicom_json: bool = False  # query is a DICOM JSON identifier (Harmony's form)


def normalize_operation(value: object) -> str:
    known = _NORMALIZED.get(value) if type(value) is str else None
    if known is not None:
        return known
    if not isinstance(value, str):
        raise RequestError("operation", f"must be a string, got {_kind(value)}")
    key = value.strip().replace("-", "").replace("_", "").lower()
    op = _ALIASES.get(key)
    if op is None:
        raise RequestError(
            "operation", f"unknown operation {value!r}; use one of {', '.join(OPERATIONS)}"
        )
    if len(_NORMALIZED) < 1024:
        _NORMALIZED[value] = op
    return op


def parse_json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise RequestError("body", 'empty; send a JSON object such as {"operation": "C-ECHO"}')
    try:
        obj = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise RequestError("body", f"invalid JSON: {exc}") from None
    except RecursionError:
        raise RequestError("body", "JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError("body", f"invalid JSON text: {exc}") from None
    if not isinstance(obj, dict):
        raise RequestError("body", f"must be a JSON object, got {_kind(obj)}")
    return obj


def parse_operation(obj: dict[str, Any], *, operation: str | None = None) -> OperationRequest:
    """Validate a request object. ``operation`` is given when the URL names it (Harmony's form)."""
    unknown = [] if obj.keys() <= KNOWN_FIELDS else sorted(set(obj) - KNOWN_FIELDS)
    if operation is not None and obj and obj.keys().isdisjoint(KNOWN_FIELDS):
        # Harmony's form: the whole body is a DICOM JSON identifier
        return OperationRequest(operation, query=obj, dicom_json=True)
    if unknown:
        name = unknown[0]
        if _is_dicom_key(name):
            raise RequestError(
                name,
                "a DICOM attribute at the top level of the request; put it in"
                ' "query" (keywords) or "identifier" (DICOM JSON)',
            )
        raise RequestError(
            name, f"unknown field; allowed fields are {', '.join(sorted(KNOWN_FIELDS))}"
        )
    if operation is None:
        if "operation" not in obj:
            raise RequestError(
                "operation", 'missing; say which DIMSE operation to run, e.g. "C-FIND"'
            )
        operation = normalize_operation(obj["operation"])
    elif "operation" in obj and normalize_operation(obj["operation"]) != operation:
        raise RequestError(
            "operation", f"the URL asks for {operation} but the body for {obj['operation']}"
        )
    req = OperationRequest(operation)
    level = obj.get("level")
    if level is not None:
        if not isinstance(level, str):
            raise RequestError("level", f"must be a string, got {_kind(level)}")
        up = level.strip().upper()
        up = "IMAGE" if up == "INSTANCE" else up
        if up not in ("PATIENT", "STUDY", "SERIES", "IMAGE"):
            raise RequestError("level", f"{level!r} is not PATIENT, STUDY, SERIES or IMAGE")
        req.level = up
    # PATIENT level exists only in the Patient Root model, so asking for it picks that model
    if "model" in obj:
        model = obj["model"]
        if not isinstance(model, str) or model.strip().upper() not in ("STUDY", "PATIENT"):
            raise RequestError(
                "model", f"{model!r} is not STUDY or PATIENT (the query/retrieve root)"
            )
        req.model = model.strip().upper()
    elif req.level == "PATIENT":
        req.model = "PATIENT"
    if "identifier" in obj and "query" in obj:
        raise RequestError("identifier", "give either query or identifier, not both")
    if "identifier" in obj:
        ident = obj["identifier"]
        if not isinstance(ident, dict):
            raise RequestError("identifier", f"must be a DICOM JSON object, got {_kind(ident)}")
        req.query, req.dicom_json = ident, True
    elif "query" in obj:
        query = obj["query"]
        if not isinstance(query, dict):
            raise RequestError(
                "query", f"must be a JSON object of DICOM keywords, got {_kind(query)}"
            )
        req.query = query
    if operation in ("C-MOVE", "C-GET") and not req.query:
        raise RequestError(
            "query", f"{operation} needs a query naming what to retrieve, e.g. StudyInstanceUID"
        )
    dest = obj.get("destination")
    if dest is not None:
        if operation != "C-MOVE":
            raise RequestError("destination", "only C-MOVE takes a destination")
        if (
            not isinstance(dest, str)
            or not dest.strip()
            or len(dest.strip()) > 16
            or "\\" in dest
            or not dest.isascii()
            or not dest.isprintable()
        ):
            raise RequestError(
                "destination", f"{dest!r} is not an AE title (1 to 16 printable ASCII characters)"
            )
        req.destination = dest.strip()
    limit = obj.get("limit")
    if limit is not None:
        if operation != "C-FIND":
            raise RequestError("limit", "only C-FIND takes a limit")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise RequestError("limit", f"must be a positive integer, got {limit!r}")
        req.limit = limit
    if "priority" in obj:
        priority = obj["priority"]
        if type(priority) is not int or priority not in (0, 1, 2):
            raise RequestError("priority", "must be 0 (medium), 1 (high) or 2 (low)")
        req.priority = priority
    return req


def _is_dicom_key(name: str) -> bool:
    """Whether a JSON field name is a DICOM keyword or an 8-hex-digit tag."""
    return bool(name) and (
        name in keyword_dict or re.fullmatch(r"[0-9A-Fa-f]{8}", name) is not None
    )


def _kind(value: object) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
