"""DIMSE status codes: their category and their meaning in words.

General statuses come from PS3.7 annex C, service-specific ones from PS3.4 (C-STORE B.2.3, C-FIND
C.4.1.1.4, C-MOVE C.4.2.1.5, C-GET C.4.3.1.4). Ranges such as A7xx or Cxxx are matched by masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

StatusCategory = Literal["success", "pending", "cancel", "warning", "failure"]

SUCCESS = 0x0000
PENDING = 0xFF00
PENDING_WARNING = 0xFF01  # C-FIND: pending, some optional keys not supported
CANCEL = 0xFE00

_WARNING_CODES = frozenset({0x0001, 0x0107, 0x0116})

# Exact codes meaningful for every DIMSE service (PS3.7 annex C).
_GENERAL: dict[int, str] = {
    0x0000: "Success",
    0x0001: "Warning: requested optional attributes are not supported",
    0x0105: "Failure: no such attribute",
    0x0106: "Failure: invalid attribute value",
    0x0107: "Warning: attribute list error",
    0x0110: "Failure: processing failure",
    0x0111: "Failure: duplicate SOP instance",
    0x0112: "Failure: no such SOP instance",
    0x0113: "Failure: no such event type",
    0x0114: "Failure: no such argument",
    0x0115: "Failure: invalid argument value",
    0x0116: "Warning: attribute value out of range",
    0x0117: "Failure: invalid object instance",
    0x0118: "Failure: no such SOP class",
    0x0119: "Failure: class-instance conflict",
    0x0120: "Failure: missing attribute",
    0x0121: "Failure: missing attribute value",
    0x0122: "Refused: SOP class not supported",
    0x0123: "Failure: no such action",
    0x0124: "Refused: not authorized",
    0x0210: "Failure: duplicate invocation",
    0x0211: "Failure: unrecognized operation",
    0x0212: "Failure: mistyped argument",
    0x0213: "Failure: resource limitation",
    0xFE00: "Cancel: operation terminated due to a cancel request",
    0xFF00: "Pending: operation is continuing",
    0xFF01: "Pending: operation is continuing, with a warning",
}

# Service-specific exact codes and masked ranges: (mask, value, meaning), checked in order.
_Range = tuple[int, int, str]

_STORE_EXACT: dict[int, str] = {
    0xB000: "Warning: coercion of data elements",
    0xB006: "Warning: elements discarded",
    0xB007: "Warning: data set does not match SOP class",
}
_STORE_RANGES: tuple[_Range, ...] = (
    (0xFF00, 0xA700, "Refused: out of resources"),
    (0xFF00, 0xA900, "Error: data set does not match SOP class"),
    (0xF000, 0xC000, "Error: cannot understand"),
)

_FIND_EXACT: dict[int, str] = {
    0xA700: "Refused: out of resources",
    0xA900: "Failed: identifier does not match SOP class",
    0xFE00: "Cancel: matching terminated due to a cancel request",
    0xFF00: "Pending: matches are continuing, optional keys supported as required keys",
    0xFF01: "Pending: matches are continuing, one or more optional keys were not supported",
}
_FIND_RANGES: tuple[_Range, ...] = ((0xF000, 0xC000, "Failed: unable to process"),)

_GET_EXACT: dict[int, str] = {
    0x0000: "Success: sub-operations complete, no failures",
    0xA701: "Refused: out of resources, unable to calculate number of matches",
    0xA702: "Refused: out of resources, unable to perform sub-operations",
    0xA900: "Failed: identifier does not match SOP class",
    0xB000: "Warning: sub-operations complete, one or more failures or warnings",
    0xFE00: "Cancel: sub-operations terminated due to a cancel indication",
    0xFF00: "Pending: sub-operations are continuing",
}
_MOVE_EXACT: dict[int, str] = {**_GET_EXACT, 0xA801: "Refused: move destination unknown"}
_GET_RANGES: tuple[_Range, ...] = ((0xF000, 0xC000, "Failed: unable to process"),)

_SERVICES: dict[str, tuple[dict[int, str], tuple[_Range, ...]]] = {
    "C-STORE": (_STORE_EXACT, _STORE_RANGES),
    "C-FIND": (_FIND_EXACT, _FIND_RANGES),
    "C-GET": (_GET_EXACT, _GET_RANGES),
    "C-MOVE": (_MOVE_EXACT, _GET_RANGES),
}

# Used when the command is unknown: the first service naming the code wins.
_ANY_SERVICE_EXACT: dict[int, str] = {**_STORE_EXACT, **_FIND_EXACT, **_MOVE_EXACT}
_ANY_SERVICE_EXACT.update({0xFE00: _GENERAL[0xFE00], 0xFF00: _GENERAL[0xFF00], 0x0000: "Success"})
_ANY_SERVICE_RANGES: tuple[_Range, ...] = (
    (0xFF00, 0xA700, "Refused: out of resources"),
    (0xFF00, 0xA900, "Error: data set or identifier does not match SOP class"),
    (0xF000, 0xC000, "Error: cannot understand or unable to process"),
)


def status_category(code: int) -> StatusCategory:
    """The category of a status code (PS3.7 annex C); codes defined nowhere count as failures."""
    if code == SUCCESS:
        return "success"
    if code in (PENDING, PENDING_WARNING):
        return "pending"
    if code == CANCEL:
        return "cancel"
    if code in _WARNING_CODES or code & 0xF000 == 0xB000:
        return "warning"
    return "failure"


def _service_name(command: str | None) -> str | None:
    """'c-store', 'C_STORE_RQ', 'C-STORE-RSP' -> 'C-STORE'."""
    if not command:
        return None
    name = command.strip().upper().replace("_", "-")
    for suffix in ("-RSP", "-RQ"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name


def _match(code: int, exact: dict[int, str], ranges: tuple[_Range, ...]) -> str | None:
    meaning = exact.get(code)
    if meaning is not None:
        return meaning
    for mask, value, words in ranges:
        if code & mask == value:
            return words
    return None


def status_meaning(code: int, command: str | None = None) -> str:
    """Human words for a status code, in the words of ``command`` (e.g. "C-STORE") when given."""
    service = _SERVICES.get(_service_name(command) or "")
    if service is not None:
        meaning = _match(code, *service)
        if meaning is not None:
            return meaning
    meaning = _GENERAL.get(code)
    if meaning is not None:
        return meaning
    if service is None:
        meaning = _match(code, _ANY_SERVICE_EXACT, _ANY_SERVICE_RANGES)
        if meaning is not None:
            return meaning
    category = status_category(code)
    return f"Unknown {category} status 0x{code:04X}"


@dataclass(frozen=True, slots=True)
class StatusInfo:
    code: int
    category: StatusCategory
    meaning: str

    @property
    def is_success(self) -> bool:
        return self.category == "success"

    @property
    def is_pending(self) -> bool:
        return self.category == "pending"

    @property
    def is_final(self) -> bool:
        """True unless more responses follow for the same request."""
        return self.category != "pending"

    def __str__(self) -> str:
        return f"0x{self.code:04X} ({self.category}): {self.meaning}"


@lru_cache(maxsize=4096)
def describe_status(code: int, command: str | None = None) -> StatusInfo:
    """Code, category and meaning (cached: a few codes are met over and over)."""
    return StatusInfo(code, status_category(code), status_meaning(code, command))
