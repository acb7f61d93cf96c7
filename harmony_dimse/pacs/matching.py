"""Identifiers -> query plans, and attribute matching as PS3.4 C.2.2.2 describes it.

A plan is made once per distinct identifier (and cached): SQL prefilters on the indexed unique keys,
a matcher per remaining key, and the layout of each answer (which stored elements, in tag order,
and the zero-length ones for keys the record lacks). Matching kinds: single value, wildcards
``*`` and ``?``, universal (empty), list of UIDs, DA/TM/DT ranges, sequence matching with the keys
of the query's item, and person names compared per component group without regard to case.
Several values in a non-UID key (``CT\\MR``) match when any of them does, as Orthanc does.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from pydicom.datadict import dictionary_VR

from ..data.dicomjson import DicomJSONError, dataset_bytes_to_json
from .attributes import (
    CHARSET_VRS,
    COMPUTED_TAGS,
    IMAGE,
    LEVELS,
    PATIENT,
    SERIES,
    STUDY,
    decode_values,
    encode_element,
    level_of,
    text_decoder,
)
from .index import KEY_COLUMNS, LevelRow, SQLFilter

__all__ = [
    "QueryError",
    "QueryPlan",
    "QueryPlanner",
    "compile_key",
    "stored_entry",
    "stored_values",
]

SPECIFIC_CHARACTER_SET: Final = 0x00080005
QUERY_RETRIEVE_LEVEL: Final = 0x00080052
RETRIEVE_AE_TITLE: Final = 0x00080054
INSTANCE_AVAILABILITY: Final = 0x00080056
UNIQUE_KEYS: Final = {PATIENT: 0x00100020, STUDY: 0x0020000D, SERIES: 0x0020000E, IMAGE: 0x00080018}
_UNIQUE_KEY_VRS: Final = {0x00100020: "LO", 0x0020000D: "UI", 0x0020000E: "UI", 0x00080018: "UI"}
# Keys that configure the query rather than match anything.
_NOT_MATCHED: Final = frozenset(
    {SPECIFIC_CHARACTER_SET, QUERY_RETRIEVE_LEVEL, 0x00080053, 0x00080201, 0x00080402}
)
_WILDCARD_VRS: Final = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_NUMERIC_VRS: Final = frozenset({"IS", "DS", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})
_TRAILING_ONLY_VRS: Final = frozenset({"LT", "ST", "UT", "UR"})
_TEMPORAL_WIDTH: Final = {"DA": 8, "TM": 12, "DT": 20}
_DT_OFFSET = re.compile(r"[+-]\d{4}$")
_DT_RANGE = re.compile(r"^(\d[\d.]*(?:[+-]\d{4})?)?-(\d[\d.]*(?:[+-]\d{4})?)?$")
_PLAN_CACHE_SIZE: Final = 512

# Statuses of PS3.4 C.4.1.1.4 (C-FIND) and C.4.2.1.5 (C-MOVE/C-GET) a bad identifier gets.
IDENTIFIER_DOES_NOT_MATCH: Final = 0xA900
UNABLE_TO_PROCESS: Final = 0xC000

Values = list[Any]  # strings, or for a sequence its items as {tag: Values}
Test = Callable[[Values], bool]


class QueryError(Exception):
    """An identifier the PACS cannot run: ``status`` to answer with, ``comment`` saying why."""

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


@dataclass(slots=True, frozen=True)
class KeyMatcher:
    level: int
    tag: int
    test: Test


@dataclass(slots=True, frozen=True)
class ReturnKey:
    """One element of every answer: a stored attribute, or a fixed element (``fixed``)."""

    tag: int
    level: int
    empty: tuple[bytes, bytes]  # zero-length element: (explicit VR, implicit VR)
    fixed: tuple[bytes, bytes] | None = None
    sequence: bool = False


@dataclass(slots=True)
class QueryPlan:
    level: int
    model: str
    filters: tuple[SQLFilter, ...]
    matchers: tuple[KeyMatcher, ...]
    return_keys: tuple[ReturnKey, ...]
    charset_requested: bool
    unsupported_keys: tuple[int, ...]  # keys with a value the PACS cannot match on (FF01)

    def matches(self, row: Sequence[LevelRow]) -> bool:
        for matcher in self.matchers:
            if not matcher.test(stored_values(row[matcher.level], matcher.tag)):
                return False
        return True

    def answer(self, row: Sequence[LevelRow], implicit: bool) -> bytes:
        """The identifier of one C-FIND answer, in the association's VR encoding."""
        charset = row[-1].charset
        transcode = any(level.charset != charset for level in row)
        if transcode:
            charset = "ISO_IR 192"  # ancestors in other character sets: everything in UTF-8
        parts: list[bytes] = []
        if charset or self.charset_requested:
            parts.append(encode_element(SPECIFIC_CHARACTER_SET, "CS", _pad(charset), implicit))
        for key in self.return_keys:
            if key.fixed is not None:
                parts.append(key.fixed[implicit])
                continue
            if key.level > self.level:
                parts.append(key.empty[implicit])
                continue
            level = row[key.level]
            entry = stored_entry(level, key.tag)
            if entry is None:
                parts.append(key.empty[implicit])
            elif entry[0] == "SQ":
                parts.append(entry[2] if implicit else entry[1])
            else:
                vr, value = entry[0], entry[1]
                if transcode and vr in CHARSET_VRS and level.charset != charset:
                    value = _pad(text_decoder(level.charset)(value), "utf-8")
                parts.append(encode_element(key.tag, vr, value, implicit))
        return b"".join(parts)


def _pad(text: str, codec: str = "ascii") -> bytes:
    raw = text.encode(codec, errors="replace")
    return raw + b" " if len(raw) & 1 else raw


def _count(value: object) -> tuple[str, bytes]:
    return "IS", _pad(str(value))


def stored_entry(level: LevelRow, tag: int) -> tuple[Any, ...] | None:
    """The stored (or computed) attribute of a row, or None."""
    entry = level.attrs.get(tag)
    if entry is not None or tag not in COMPUTED_TAGS:
        return entry
    counts = level.counts
    if tag == 0x00201200:
        return _count(counts[0])
    if tag == 0x00201202:
        return _count(counts[1])
    if tag == 0x00201204:
        return _count(counts[2])
    if tag == 0x00201206 or tag == 0x00201209:
        return _count(counts[0])
    if tag == 0x00201208:
        return _count(counts[1])
    if tag == 0x00080061:
        return "CS", _pad(counts[2])
    if tag == 0x00080062:
        raw = counts[3].encode("ascii", errors="replace")
        return "UI", raw + b"\x00" if len(raw) & 1 else raw
    return None


def stored_values(level: LevelRow, tag: int) -> Values:
    """A row's attribute as match input: a list of strings, or of items for a sequence."""
    entry = stored_entry(level, tag)
    if entry is None:
        return []
    if entry[0] == "SQ":
        try:
            parsed = dataset_bytes_to_json(entry[1], default_charset=level.charset or None)
        except (DicomJSONError, ValueError):
            return []
        attribute = next(iter(parsed.values()), {})
        return _json_values("SQ", attribute)
    return decode_values(entry[0], entry[1], text_decoder(level.charset))


def _json_values(vr: str, attribute: Mapping[str, Any]) -> Values:
    values = attribute.get("Value")
    if not values:
        return []
    if vr == "SQ":
        return [
            {int(key, 16): _json_values(str(a.get("vr", "UN")), a) for key, a in item.items()}
            for item in values
            if isinstance(item, Mapping)
        ]
    if vr == "PN":
        names = []
        for name in values:
            if isinstance(name, Mapping):
                groups = [str(name.get(g, "")) for g in ("Alphabetic", "Ideographic", "Phonetic")]
                names.append("=".join(groups).rstrip("="))
            elif name is not None:
                names.append(str(name))
        return names
    return [str(value) for value in values if value is not None]


# --- compiling one key ----------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _clean(vr: str, value: str) -> str:
    return value.rstrip(" \x00") if vr in _TRAILING_ONLY_VRS else value.strip(" \x00")


def _temporal(vr: str, text: str) -> str:
    """A DA/TM/DT value as fixed-width digits, so that string order is time order."""
    text = text.strip()
    if vr == "DT":
        text = _DT_OFFSET.sub("", text)
    elif vr == "TM":
        text = text.replace(":", "")
        main, _, fraction = text.partition(".")
        return main + fraction if len(main) == 6 else main
    return text.replace(".", "")


def _range_bounds(vr: str, query: str) -> tuple[str, str] | None:
    """The two ends of a range query ("" when open), or None for a single value."""
    if vr == "DT":  # a DT may carry a "-hhmm" offset, so only a full match splits it
        match = _DT_RANGE.match(query)
        return (match.group(1) or "", match.group(2) or "") if match else None
    if "-" not in query:
        return None
    low, _, high = query.partition("-")
    return low, high


def _range_test(vr: str, query: str) -> Callable[[str], bool]:
    width = _TEMPORAL_WIDTH[vr]
    bounds = _range_bounds(vr, query)
    if bounds is None:  # a single value: the same instant, at the precision given
        exact = _temporal(vr, query).ljust(width, "0")

        def same(stored: str) -> bool:
            return _temporal(vr, stored).ljust(width, "0") == exact

        return same
    low = _temporal(vr, bounds[0]).ljust(width, "0") if bounds[0] else ""
    # an upper bound includes the whole of its last unit: "0907" ends at 09:07:59.999999
    high = _temporal(vr, bounds[1]).ljust(width, "9") if bounds[1] else "~"

    def in_range(stored: str) -> bool:
        return low <= _temporal(vr, stored).ljust(width, "0") <= high

    return in_range


def _pattern_test(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    def fits(stored: str) -> bool:
        return pattern.fullmatch(stored) is not None

    return fits


def _folded_test(folded: str) -> Callable[[str], bool]:
    def same(stored: str) -> bool:
        return stored.casefold() == folded

    return same


def _person_name_test(query: str) -> Callable[[str], bool] | None:
    groups = [group.rstrip("^ ") for group in query.split("=")]
    tests: list[tuple[int, Callable[[str], bool]]] = []
    for index, group in enumerate(groups):
        if not group or group == "*":
            continue
        if "*" in group or "?" in group:
            tests.append((index, _pattern_test(_wildcard(group, True))))
        else:
            tests.append((index, _folded_test(group.casefold())))
    if not tests:
        return None

    def matches(stored: str) -> bool:
        stored_groups = [group.rstrip("^ ") for group in stored.split("=")]
        return all(
            test(stored_groups[index] if index < len(stored_groups) else "")
            for index, test in tests
        )

    return matches


def _number_test(query: str) -> Callable[[str], bool]:
    try:
        number = float(query)
    except ValueError:
        return lambda stored: stored == query

    def equal(stored: str) -> bool:
        try:
            return float(stored) == number
        except ValueError:
            return False

    return equal


def compile_key(vr: str, attribute: Mapping[str, Any]) -> Test | None:
    """A test for one key of an identifier, or None when it matches everything (universal)."""
    if vr == "SQ":
        return _sequence_test(attribute)
    queries = [_clean(vr, value) for value in _json_values(vr, attribute)]
    queries = [query for query in queries if query]
    if not queries or "*" in queries:
        return None
    single: list[Callable[[str], bool]] = []
    exact: set[str] = set()
    for query in queries:
        if vr == "PN":
            test = _person_name_test(query)
            if test is None:
                return None
            single.append(test)
        elif vr in _TEMPORAL_WIDTH:
            single.append(_range_test(vr, query))
        elif ("*" in query or "?" in query) and (vr in _WILDCARD_VRS or vr == "UI"):
            single.append(_pattern_test(_wildcard(query, False)))
        elif vr in _NUMERIC_VRS:
            single.append(_number_test(query))
        else:
            exact.add(query)
    if not single:
        if len(exact) == 1:
            (only,) = exact
            return lambda stored: only in stored
        return lambda stored: not exact.isdisjoint(stored)

    def any_value(stored: Values) -> bool:
        for value in stored:
            if value in exact:
                return True
            for test in single:
                if test(value):
                    return True
        return False

    return any_value


def _sequence_test(attribute: Mapping[str, Any]) -> Test | None:
    items = [item for item in attribute.get("Value") or [] if isinstance(item, Mapping)]
    alternatives: list[list[tuple[int, Test]]] = []
    for item in items:
        tests = []
        for key, sub in item.items():
            tag = int(key, 16)
            if tag in _NOT_MATCHED or not isinstance(sub, Mapping):
                continue
            test = compile_key(str(sub.get("vr", "UN")), sub)
            if test is not None:
                tests.append((tag, test))
        if not tests:
            return None  # an item of universal keys matches any sequence
        alternatives.append(tests)
    if not alternatives:
        return None

    def any_item(stored: Values) -> bool:
        for stored_item in stored:
            for tests in alternatives:
                if all(test(stored_item.get(tag, [])) for tag, test in tests):
                    return True
        return False

    return any_item


# --- plans ----------------------------------------------------------------------------------------


def _vr_of(tag: int, attribute: Mapping[str, Any]) -> str:
    vr = attribute.get("vr")
    if isinstance(vr, str) and len(vr) == 2:
        return vr
    try:
        return str(dictionary_VR(tag))[:2]
    except KeyError:
        return "UN"


def _fixed(tag: int, vr: str, text: str) -> tuple[bytes, bytes]:
    value = _pad(text)
    return encode_element(tag, vr, value, False), encode_element(tag, vr, value, True)


def _empty(tag: int, vr: str) -> tuple[bytes, bytes]:
    return encode_element(tag, vr, b"", False), encode_element(tag, vr, b"", True)


def _sql_filter(tag: int, vr: str, attribute: Mapping[str, Any]) -> SQLFilter | None:
    values = [_clean(vr, value) for value in _json_values(vr, attribute)]
    values = [value for value in values if value]
    if not values or "*" in values:
        return None
    column = KEY_COLUMNS[tag][1]
    wild = [value for value in values if "*" in value or "?" in value]
    if not wild:
        if len(values) == 1:
            return SQLFilter(column, "=", (values[0],))
        if len(values) <= 500:
            return SQLFilter(column, "IN", tuple(dict.fromkeys(values)))
        return None
    if len(values) == 1:
        glob = values[0].replace("[", "[[]")
        return SQLFilter(column, "GLOB", (glob,))
    return None


class QueryPlanner:
    """Makes (and caches) the plans of identifiers for one PACS AE title."""

    def __init__(self, ae_title: str) -> None:
        self.ae_title = ae_title
        self._cache: OrderedDict[tuple[bytes, bool, str, bool], QueryPlan] = OrderedDict()

    def plan(
        self, identifier: bytes, *, implicit: bool, model: str, retrieve: bool = False
    ) -> QueryPlan:
        """The plan of an encoded identifier; ``QueryError`` says why one cannot be made.

        ``model`` is "PATIENT" or "STUDY". With ``retrieve`` (C-MOVE/C-GET) only the unique keys
        select, and the level's own unique key must be given.
        """
        key = (identifier, implicit, model, retrieve)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        plan = self._make(identifier, implicit, model, retrieve)
        self._cache[key] = plan
        if len(self._cache) > _PLAN_CACHE_SIZE:
            self._cache.popitem(last=False)
        return plan

    def _make(self, identifier: bytes, implicit: bool, model: str, retrieve: bool) -> QueryPlan:
        try:
            query = dataset_bytes_to_json(identifier, implicit_vr=implicit)
        except (DicomJSONError, ValueError) as exc:
            raise QueryError(UNABLE_TO_PROCESS, f"identifier cannot be read: {exc}") from None
        keys = {int(name, 16): attribute for name, attribute in query.items()}
        level_values = _json_values("CS", keys.get(QUERY_RETRIEVE_LEVEL, {}))
        level_name = level_values[0].strip().upper() if level_values else ""
        if level_name not in LEVELS:
            raise QueryError(
                IDENTIFIER_DOES_NOT_MATCH,
                f"QueryRetrieveLevel {level_name!r} is not PATIENT, STUDY, SERIES or IMAGE"
                if level_name
                else "no QueryRetrieveLevel (0008,0052) in the identifier",
            )
        level = LEVELS[level_name]
        if level == PATIENT and model == "STUDY":
            raise QueryError(IDENTIFIER_DOES_NOT_MATCH, "the Study Root model has no PATIENT level")
        top = PATIENT if model == "PATIENT" else STUDY
        unique_tags = {UNIQUE_KEYS[lv] for lv in range(top, level + 1)}

        filters: list[SQLFilter] = []
        matchers: list[KeyMatcher] = []
        unsupported: list[int] = []
        returned: dict[int, ReturnKey] = {}
        for tag, attribute in keys.items():
            if tag in _NOT_MATCHED or tag >> 16 & 1:
                continue
            vr = _vr_of(tag, attribute)
            if tag == RETRIEVE_AE_TITLE:
                returned[tag] = ReturnKey(tag, -1, (b"", b""), _fixed(tag, "AE", self.ae_title))
                continue
            if tag == INSTANCE_AVAILABILITY:
                returned[tag] = ReturnKey(tag, -1, (b"", b""), _fixed(tag, "CS", "ONLINE"))
                continue
            tag_level = COMPUTED_TAGS.get(tag, level_of(tag))
            returned[tag] = ReturnKey(tag, tag_level, _empty(tag, vr), None, vr == "SQ")
            if retrieve and tag not in unique_tags and tag not in KEY_COLUMNS:
                continue
            test = compile_key(vr, attribute)
            if test is None:
                continue
            if tag_level > level:
                unsupported.append(tag)  # a key below the query level: not matched
                continue
            if tag in KEY_COLUMNS and vr not in ("SQ", "PN"):
                sql = _sql_filter(tag, vr, attribute)
                if sql is not None:
                    filters.append(sql)
                    continue
            matchers.append(KeyMatcher(tag_level, tag, test))
        if retrieve:
            own = UNIQUE_KEYS[level]
            if not _json_values("UI", keys.get(own, {})) or own in unsupported:
                raise QueryError(
                    IDENTIFIER_DOES_NOT_MATCH,
                    f"a retrieve at {level_name} level needs ({own >> 16:04X},{own & 0xFFFF:04X})",
                )
        for tag in sorted(unique_tags):
            if tag not in returned:
                returned[tag] = ReturnKey(
                    tag, level_of(tag), _empty(tag, _UNIQUE_KEY_VRS[tag]), None
                )
        returned[QUERY_RETRIEVE_LEVEL] = ReturnKey(
            QUERY_RETRIEVE_LEVEL, -1, (b"", b""), _fixed(QUERY_RETRIEVE_LEVEL, "CS", level_name)
        )
        returned.setdefault(
            RETRIEVE_AE_TITLE,
            ReturnKey(
                RETRIEVE_AE_TITLE, -1, (b"", b""), _fixed(RETRIEVE_AE_TITLE, "AE", self.ae_title)
            ),
        )
        return QueryPlan(
            level=level,
            model=model,
            filters=tuple(filters),
            matchers=tuple(matchers),
            return_keys=tuple(returned[tag] for tag in sorted(returned)),
            charset_requested=SPECIFIC_CHARACTER_SET in keys,
            unsupported_keys=tuple(unsupported),
        )
