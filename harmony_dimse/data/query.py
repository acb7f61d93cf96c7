"""A gateway request's query -> the identifier of a C-FIND, C-MOVE or C-GET (PS3.4 annex C).

The query is a JSON object whose keys are DICOM keywords ("PatientName") or tags ("0010,0010",
"00100010", "(0010,0010)") and whose values are strings, numbers, lists (multiple values), null or
"" (a return key), DICOM JSON attribute objects ({"vr": ..., "Value": [...]}) or, for sequences,
an object or a list of objects (sequence matching). Every value is checked against its VR and the
matching rules, and every failure names the field and the reason (``QueryError``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import re
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from pydicom import Dataset
from pydicom import charset as pydicom_charset
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_dict, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.valuerep import format_number_as_ds

from harmony_dimse.data.encoding import dataset_encoding, write_dataset_bytes

__all__ = [
    "LEVELS",
    "QueryError",
    "build_identifier",
    "encode_identifier",
    "identifier_from_dicom_json",
    "normalize_level",
]


class QueryError(ValueError):
    """A query that cannot become an identifier: ``field`` says where, ``reason`` says why."""

    def __init__(self, field: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.hint = hint


LEVELS: Final = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_LEVEL_ALIASES: Final = {
    "PATIENT": "PATIENT",
    "STUDY": "STUDY",
    "SERIES": "SERIES",
    "IMAGE": "IMAGE",
    "INSTANCE": "IMAGE",
}
_MODELS: Final = {"PATIENT": "PATIENT", "STUDY": "STUDY"}
_OPERATIONS: Final = ("C-FIND", "C-MOVE", "C-GET")

_QUERY_RETRIEVE_LEVEL: Final = 0x00080052
_SPECIFIC_CHARACTER_SET: Final = 0x00080005
_PATIENT_ID: Final = 0x00100020
_UNIQUE_KEYS: Final = {
    "PATIENT": (_PATIENT_ID, "PatientID", "LO"),
    "STUDY": (0x0020000D, "StudyInstanceUID", "UI"),
    "SERIES": (0x0020000E, "SeriesInstanceUID", "UI"),
    "IMAGE": (0x00080018, "SOPInstanceUID", "UI"),
}
_UNIQUE_KEY_LEVEL: Final = {tag: level for level, (tag, _, _) in _UNIQUE_KEYS.items()}

# Keys that say nothing about the level of a query.
_LEVEL_NEUTRAL_TAGS: Final = frozenset({_SPECIFIC_CHARACTER_SET, _QUERY_RETRIEVE_LEVEL, 0x00080201})
# Group 0010 attributes that belong to the study level in the Q/R information model (PS3.4 C.6).
_STUDY_LEVEL_PATIENT_TAGS: Final = frozenset(
    {0x00101010, 0x00101020, 0x00101030, 0x00102180, 0x001021B0}
)
# Number of Patient Related Studies / Series / Instances.
_PATIENT_LEVEL_EXTRA_TAGS: Final = frozenset({0x00201200, 0x00201202, 0x00201204})

_TAG_KEY = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")
_PN_GROUPS: Final = ("Alphabetic", "Ideographic", "Phonetic")
_VRS: Final = frozenset(
    {
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
        "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
        "UR", "US", "UT", "UV",
    }
)  # fmt: skip
_BINARY_VRS: Final = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_NUMBER_VRS: Final = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})
_CHARSET_VRS: Final = frozenset({"SH", "LO", "UC", "ST", "LT", "UT", "PN"})
_SINGLE_VALUE_VRS: Final = frozenset({"LT", "ST", "UT", "UR"})
_WILDCARD_VRS: Final = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_MAX_LENGTH: Final = {
    "AE": 16, "CS": 16, "SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "UI": 64, "DS": 16,
    "IS": 12, "AS": 4, "UT": 0xFFFFFFFE, "UC": 0xFFFFFFFE, "UR": 0xFFFFFFFE,
}  # fmt: skip
_INTEGER_RANGES: Final = {
    "US": (0, 0xFFFF),
    "SS": (-0x8000, 0x7FFF),
    "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF),
    "UV": (0, 0xFFFFFFFFFFFFFFFF),
    "SV": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
    "IS": (-0x80000000, 0x7FFFFFFF),
}

_CS_VALUE = re.compile(r"^[A-Z0-9 _]*$")
_CS_PATTERN = re.compile(r"^[A-Z0-9 _*?]*$")
_AS_VALUE = re.compile(r"^\d{3}[DWMY]$")
_UI_VALUE = re.compile(r"^[0-9.]+$")
_IS_VALUE = re.compile(r"^[+-]?\d+$")
_DS_VALUE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_DA_VALUE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM_VALUE = re.compile(r"^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.\d{1,6})?)?)?$")
_DT_VALUE = re.compile(
    r"^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.\d{1,6})?)?)?)?)?)?"
    r"(?:[+-]\d{4})?$"
)
_DT_RANGE = re.compile(r"^(\d[\d.]*(?:[+-]\d{4})?)?-(\d[\d.]*(?:[+-]\d{4})?)?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # LT/ST/UT keep TAB LF FF CR


@dataclass(slots=True)
class _Context:
    operation: str
    non_ascii_text: list[tuple[str, str]] = field(default_factory=list)
    query_level: str | None = None
    depth: int = 0  # sequences entered so far


def normalize_level(level: str, field_name: str = "level") -> str:
    """'study' -> 'STUDY', 'INSTANCE' -> 'IMAGE'; QueryError for anything else."""
    if not isinstance(level, str):
        raise QueryError(field_name, "expected a string: PATIENT, STUDY, SERIES or IMAGE")
    normalized = _LEVEL_ALIASES.get(level.strip().upper())
    if normalized is None:
        raise QueryError(field_name, f"{level!r} is not PATIENT, STUDY, SERIES or IMAGE")
    return normalized


def _normalize_model(model: str) -> str:
    if isinstance(model, str):
        name = model.strip().upper().replace("_", " ").removesuffix("ROOT").strip()
        if name in _MODELS:
            return _MODELS[name]
    raise QueryError("model", f"{model!r} is not PATIENT or STUDY (the query/retrieve root)")


def _normalize_operation(operation: str) -> str:
    if isinstance(operation, str):
        name = operation.strip().upper().replace("_", "-")
        if not name.startswith("C-"):
            name = "C-" + name
        if name in _OPERATIONS:
            return name
    raise QueryError("operation", f"{operation!r} is not C-FIND, C-MOVE or C-GET")


@lru_cache(maxsize=1)
def _all_keywords() -> tuple[str, ...]:
    return tuple(keyword_dict)


def _resolve_key(key: object, field_name: str) -> tuple[int, str | None]:
    """The tag of a query key and its dictionary VR (None for a private or ambiguous tag)."""
    if not isinstance(key, str) or not key.strip():
        raise QueryError(field_name, "keys are DICOM keywords or tags like 0010,0010")
    match = _TAG_KEY.match(key)
    if match:
        tag = int(match.group(1) + match.group(2), 16)
    else:
        found = keyword_dict.get(key.strip())
        if found is None:
            close = difflib.get_close_matches(key.strip(), _all_keywords(), n=1)
            hint = f"did you mean {close[0]}?" if close else None
            raise QueryError(field_name, "unknown DICOM keyword", hint=hint)
        tag = found
    group, element = tag >> 16, tag & 0xFFFF
    if group in (0x0000, 0x0002) or group == 0xFFFE:
        raise QueryError(field_name, "command, file meta and item tags cannot be query keys")
    if element == 0:
        raise QueryError(field_name, "group length elements cannot be query keys")
    if group & 1:
        return tag, ("LO" if 0x0010 <= element <= 0x00FF else None)
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        raise QueryError(field_name, "unknown DICOM tag") from None
    return tag, (vr if vr in _VRS else None)


def _vm_is_single(tag: int) -> bool:
    if tag >> 16 & 1:
        return False
    try:
        return dictionary_VM(tag) == "1"
    except KeyError:
        return False


# --- single values -------------------------------------------------------------------------------


def _check_date(text: str, field_name: str) -> None:
    match = _DA_VALUE.match(text)
    if not match:
        raise QueryError(
            field_name, f"{text!r} is not a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD"
        )
    try:
        dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise QueryError(field_name, f"{text!r} is not a valid calendar date") from None


def _check_time(text: str, field_name: str) -> None:
    match = _TM_VALUE.match(text)
    if not match:
        raise QueryError(field_name, f"{text!r} is not a time HHMMSS.FFFFFF or a range of times")
    hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    if hours > 23 or minutes > 59 or seconds > 60:
        raise QueryError(field_name, f"{text!r} is not a valid time of day")


def _check_datetime(text: str, field_name: str) -> None:
    match = _DT_VALUE.match(text)
    if not match:
        raise QueryError(
            field_name, f"{text!r} is not a date-time YYYYMMDDHHMMSS.FFFFFF&ZZXX or a range"
        )
    year, month, day, hours, minutes, seconds = (
        int(part) if part else None for part in match.groups()
    )
    try:
        dt.date(year or 1, month or 1, day or 1)
    except ValueError:
        raise QueryError(field_name, f"{text!r} is not a valid calendar date") from None
    if (hours or 0) > 23 or (minutes or 0) > 59 or (seconds or 0) > 60:
        raise QueryError(field_name, f"{text!r} is not a valid time of day")


def _check_range(text: str, vr: str, field_name: str) -> None:
    """DA, TM, DT: a single value or a range 'a-b', '-b', 'a-' (PS3.4 C.2.2.2.5)."""
    check = {"DA": _check_date, "TM": _check_time, "DT": _check_datetime}[vr]
    if any(wildcard in text for wildcard in "*?"):
        raise QueryError(
            field_name,
            f"{vr} values match by a single value or a range (a-b, -b, a-); wildcards are "
            "not allowed",
        )
    if vr == "DT":
        match = _DT_RANGE.match(text) if "-" in text else None
        if match is None:
            check(text, field_name)
            return
        start, end = match.groups()
    elif "-" in text:
        start, _, end = text.partition("-")
    else:
        check(text, field_name)
        return
    if not start and not end:
        raise QueryError(field_name, f"{text!r} is a range without either end")
    for part in (start, end):
        if part:
            check(part, field_name)
    if vr == "DA" and start and end and start > end:
        raise QueryError(field_name, f"range {text!r} starts after it ends")


def _check_person_name(text: str, field_name: str) -> None:
    groups = text.split("=")
    if len(groups) > 3:
        raise QueryError(field_name, "a person name has at most 3 component groups")
    for group_name, group in zip(_PN_GROUPS, groups, strict=False):
        if len(group) > 64:
            raise QueryError(
                field_name, f"{group_name} component group is longer than 64 characters"
            )
        if group.count("^") > 4:
            raise QueryError(field_name, f"{group_name} component group has more than 5 parts")


def _string_value(text: str, vr: str, field_name: str, context: _Context) -> str:
    """Check one value (already split on backslashes) of a string VR and return it."""
    if vr in ("DA", "TM", "DT"):
        text = text.strip()
        if text:
            _check_range(text, vr, field_name)
        return text
    if vr in ("LT", "ST", "UT"):
        if _TEXT_CONTROL.search(text):
            raise QueryError(field_name, f"{vr} value contains control characters")
    elif _CONTROL.search(text):
        raise QueryError(field_name, f"{vr} value contains control characters")
    if vr == "PN":
        _check_person_name(text, field_name)
    elif vr == "UI":
        text = text.strip()
        if "*" in text or "?" in text:
            raise QueryError(
                field_name,
                "UIDs match exactly or by a list of UIDs; wildcards are not allowed "
                '(use null or "" to return the key)',
            )
        if text and not _UI_VALUE.match(text):
            raise QueryError(field_name, f"{text!r} is not a UID (digits and dots only)")
    elif vr == "CS":
        text = text.strip()
        pattern = _CS_PATTERN if context.operation == "C-FIND" else _CS_VALUE
        if not pattern.match(text):
            raise QueryError(
                field_name,
                f"{text!r} is not a code string (uppercase letters, digits, space and "
                "underscore" + (", * and ? as wildcards)" if pattern is _CS_PATTERN else ")"),
                hint=f"did you mean {text.upper()!r}?" if pattern.match(text.upper()) else None,
            )
    elif vr == "AE":
        text = text.strip()
        if not text.isascii():
            raise QueryError(field_name, "an AE title is plain ASCII")
    elif vr == "AS":
        text = text.strip()
        if text and not _AS_VALUE.match(text):
            raise QueryError(field_name, f"{text!r} is not an age string like 045Y")
    elif vr == "IS":
        text = text.strip()
        if not _IS_VALUE.match(text):
            raise QueryError(field_name, f"{text!r} is not an integer string")
        low, high = _INTEGER_RANGES["IS"]
        if not low <= int(text) <= high:
            raise QueryError(field_name, f"{text} is outside the range of IS")
    elif vr == "DS":
        text = text.strip()
        if not _DS_VALUE.match(text):
            raise QueryError(field_name, f"{text!r} is not a decimal string")
    elif vr == "UR" and (" " in text.strip() or "\\" in text):
        raise QueryError(field_name, "a URI has no spaces or backslashes")
    limit = _MAX_LENGTH.get(vr)
    if limit is not None and len(text) > limit:
        raise QueryError(field_name, f"{vr} value is longer than {limit} characters")
    if vr in _CHARSET_VRS and not text.isascii():
        context.non_ascii_text.append((field_name, text))
    return text


def _number_value(value: object, vr: str, field_name: str) -> int | float:
    if isinstance(value, bool):
        raise QueryError(field_name, f"expected a number for VR {vr}, got a boolean")
    if vr in ("FL", "FD"):
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise QueryError(field_name, f"{value!r} is not a number (VR {vr})")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _IS_VALUE.match(value.strip()):
        number = int(value.strip())
    if number is None:
        raise QueryError(field_name, f"{value!r} is not an integer (VR {vr})")
    low, high = _INTEGER_RANGES[vr]
    if not low <= number <= high:
        raise QueryError(field_name, f"{number} is outside the range of {vr} ({low}..{high})")
    return number


def _tag_value(value: object, field_name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF:
        return value
    if isinstance(value, str):
        match = _TAG_KEY.match(value)
        if match:
            return int(match.group(1) + match.group(2), 16)
        found = keyword_dict.get(value.strip())
        if found is not None:
            return found
    raise QueryError(field_name, f"{value!r} is not a DICOM tag or keyword (VR AT)")


def _scalar_to_text(value: object, vr: str, field_name: str) -> str:
    """A JSON scalar given for a string VR, as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise QueryError(field_name, f"expected a string for VR {vr}, got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if vr == "DS":
            if value != value or value in (float("inf"), float("-inf")):
                raise QueryError(field_name, "DS cannot hold NaN or infinity")
            return format_number_as_ds(value)
        if vr == "IS" and value.is_integer():
            return str(int(value))
        raise QueryError(field_name, f"expected a string for VR {vr}, got a number")
    if vr == "DA" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d")
    if vr == "TM" and isinstance(value, dt.time):
        return value.strftime("%H%M%S.%f" if value.microsecond else "%H%M%S")
    if vr == "DT" and isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d%H%M%S.%f%z" if value.microsecond else "%Y%m%d%H%M%S%z")
    if vr == "PN" and isinstance(value, Mapping):
        return _person_name_from_json(value, field_name)
    raise QueryError(field_name, f"expected a string for VR {vr}, got {type(value).__name__}")


def _person_name_from_json(value: Mapping[Any, Any], field_name: str) -> str:
    unknown = set(value) - set(_PN_GROUPS)
    if unknown:
        raise QueryError(
            field_name,
            "a person name object has only Alphabetic, Ideographic and Phonetic, not "
            f"{sorted(map(str, unknown))}",
        )
    groups = []
    for group_name in _PN_GROUPS:
        group = value.get(group_name) or ""
        if not isinstance(group, str) or "=" in group or "\\" in group:
            raise QueryError(field_name, f"{group_name} must be a string without '=' or '\\'")
        groups.append(group)
    return "=".join(groups).rstrip("=")


# --- elements ------------------------------------------------------------------------------------


def _values_of(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _element(tag: int, vr: str, value: object, field_name: str, context: _Context) -> DataElement:
    """Turn one plain query value into a data element of VR ``vr``."""
    if vr == "SQ":
        return DataElement(tag, "SQ", _sequence_items(value, field_name, context))
    if value is None or value == "" or value == []:
        empty = "" if vr not in _BINARY_VRS and vr not in _NUMBER_VRS and vr != "AT" else None
        return DataElement(tag, vr, empty)
    if vr in _BINARY_VRS:
        if isinstance(value, bytes | bytearray | memoryview):
            return DataElement(tag, vr, bytes(value))
        raise QueryError(
            field_name, f'binary VR {vr} needs a DICOM JSON object with "InlineBinary"'
        )
    items = _values_of(value)
    for index, item in enumerate(items):
        person_name_object = vr == "PN" and isinstance(item, Mapping)
        if isinstance(item, list | tuple | Mapping) and not person_name_object:
            raise QueryError(
                _indexed(field_name, index, len(items)), f"a {vr} value cannot be nested"
            )
    converted: list[Any]
    if vr in _NUMBER_VRS:
        converted = [
            _number_value(item, vr, _indexed(field_name, index, len(items)))
            for index, item in enumerate(items)
        ]
    elif vr == "AT":
        converted = [
            _tag_value(item, _indexed(field_name, index, len(items)))
            for index, item in enumerate(items)
        ]
    else:
        texts: list[tuple[str, str]] = []
        for index, item in enumerate(items):
            item_field = _indexed(field_name, index, len(items))
            text = _scalar_to_text(item, vr, item_field)
            if vr in _SINGLE_VALUE_VRS:
                texts.append((text, item_field))
            else:
                texts.extend((part, item_field) for part in text.split("\\"))
        converted = [_string_value(text, vr, where, context) for text, where in texts]
        if vr in _SINGLE_VALUE_VRS and len(converted) > 1:
            raise QueryError(field_name, f"{vr} takes a single value")
    if len(converted) > 1 and vr != "UI" and _vm_is_single(tag):
        raise QueryError(
            field_name,
            "takes a single value (only UIDs may be given as a list to match any of them)",
        )
    element_value: object = converted[0] if len(converted) == 1 else converted
    return DataElement(tag, vr, element_value, validation_mode=pydicom_config.IGNORE)


def _indexed(field_name: str, index: int, count: int) -> str:
    return f"{field_name}[{index}]" if count > 1 else field_name


MAX_SEQUENCE_DEPTH = 8


def _sequence_items(value: object, field_name: str, context: _Context) -> list[Dataset]:
    if value is None or value == "":
        return []
    if context.depth >= MAX_SEQUENCE_DEPTH:
        raise QueryError(field_name, f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")
    context.depth += 1
    try:
        return _sequence_datasets(value, field_name, context)
    finally:
        context.depth -= 1


def _sequence_datasets(value: object, field_name: str, context: _Context) -> list[Dataset]:
    if isinstance(value, Mapping):
        return [_dataset(value, field_name, context)]
    if isinstance(value, list | tuple):
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise QueryError(f"{field_name}[{index}]", "a sequence item must be an object")
            items.append(_dataset(item, f"{field_name}[{index}]", context))
        return items
    raise QueryError(field_name, "a sequence takes an object or a list of objects")


def _attribute_object_element(
    tag: int,
    dictionary_vr: str | None,
    attribute: Mapping[Any, Any],
    field_name: str,
    context: _Context,
) -> DataElement:
    """A DICOM JSON attribute object {"vr": ..., "Value" | "InlineBinary": ...} as an element."""
    vr = attribute.get("vr")
    if not isinstance(vr, str) or vr not in _VRS:
        raise QueryError(field_name, f"{vr!r} is not a DICOM VR")
    if dictionary_vr is not None and vr != dictionary_vr and vr != "UN":
        raise QueryError(field_name, f"VR {vr} does not match the dictionary VR {dictionary_vr}")
    if dictionary_vr is None and not (tag >> 16) & 1:
        ambiguous = dictionary_VR(tag)
        if vr not in ambiguous.split(" or "):
            raise QueryError(field_name, f"VR {vr} is not one of {ambiguous}")
    unknown = set(attribute) - {"vr", "Value", "InlineBinary"}
    if "BulkDataURI" in unknown:
        raise QueryError(field_name, "BulkDataURI is not supported in a query")
    if unknown:
        raise QueryError(field_name, f"unexpected members {sorted(map(str, unknown))}")
    if "InlineBinary" in attribute:
        if vr not in _BINARY_VRS:
            raise QueryError(field_name, f"InlineBinary is only for binary VRs, not {vr}")
        encoded = attribute["InlineBinary"]
        try:
            if not isinstance(encoded, str):
                raise TypeError
            data = base64.b64decode(encoded, validate=True)
        except (TypeError, binascii.Error):
            raise QueryError(field_name, "InlineBinary is not valid base64") from None
        return _element(tag, vr, data, field_name, context)
    values = attribute.get("Value")
    if values is None:
        return _element(tag, vr, None, field_name, context)
    if not isinstance(values, list):
        raise QueryError(field_name, '"Value" must be an array')
    if vr == "SQ":
        return _element(tag, vr, values, field_name, context)
    if vr in _BINARY_VRS:
        raise QueryError(field_name, f'binary VR {vr} takes "InlineBinary", not "Value"')
    if any(item is None for item in values):
        values = ["" if item is None else item for item in values]
    return _element(tag, vr, values, field_name, context)


def _level_from_query(value: object, field_name: str) -> str | None:
    """The value of a QueryRetrieveLevel key, plain or as a DICOM JSON attribute object."""
    if isinstance(value, Mapping) and "vr" in value:
        values = value.get("Value") or []
        if not isinstance(values, list) or len(values) > 1:
            raise QueryError(field_name, "expected a single level")
        value = values[0] if values else None
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise QueryError(field_name, "expected a string: PATIENT, STUDY, SERIES or IMAGE")
    return normalize_level(value, field_name)


def _dataset(
    query: Mapping[Any, Any], path: str, context: _Context, *, top_level: bool = False
) -> Dataset:
    dataset = Dataset()
    for key, value in query.items():
        field_name = f"{path}.{key}"
        tag, dictionary_vr = _resolve_key(key, field_name)
        if top_level and tag == _QUERY_RETRIEVE_LEVEL:
            context.query_level = _level_from_query(value, field_name)
            continue
        if tag in dataset:
            raise QueryError(field_name, f"{keyword_for_tag(tag) or key} is given twice")
        if isinstance(value, Mapping) and "vr" in value:
            element = _attribute_object_element(tag, dictionary_vr, value, field_name, context)
        else:
            if dictionary_vr is None:
                raise QueryError(
                    field_name,
                    'the VR of this tag is not known; give a DICOM JSON object {"vr": ...}',
                )
            if isinstance(value, Mapping) and dictionary_vr not in ("SQ", "PN"):
                raise QueryError(field_name, f"an object is not a value for VR {dictionary_vr}")
            element = _element(tag, dictionary_vr, value, field_name, context)
        dataset.add(element)
    return dataset


# --- levels, unique keys and the character set ----------------------------------------------------


def _is_patient_level(tag: int) -> bool:
    if tag >> 16 == 0x0010:
        return tag not in _STUDY_LEVEL_PATIENT_TAGS
    return tag in _PATIENT_LEVEL_EXTRA_TAGS


def _derive_level(dataset: Dataset, model: str) -> str:
    for level in ("IMAGE", "SERIES", "STUDY"):
        if _UNIQUE_KEYS[level][0] in dataset:
            return level
    tags = [element.tag for element in dataset if element.tag not in _LEVEL_NEUTRAL_TAGS]
    if model == "PATIENT" and all(_is_patient_level(tag) for tag in tags):
        return "PATIENT"
    return "STUDY"


def _element_values(element: DataElement) -> list[str]:
    if element.is_empty:
        return []
    value = element.value
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _check_retrieve_keys(dataset: Dataset, level: str, model: str, operation: str) -> None:
    """C-MOVE/C-GET name what to retrieve by the unique keys of the level and those above."""
    levels = list(LEVELS[: LEVELS.index(level) + 1])
    if model == "STUDY":
        levels.remove("PATIENT")
    for required_level in levels:
        tag, keyword, _ = _UNIQUE_KEYS[required_level]
        field_name = f"query.{keyword}"
        values = _element_values(dataset[tag]) if tag in dataset else []
        if not values or not all(values):
            raise QueryError(
                field_name,
                f"required for {operation} at {level} level with the {model.title()} Root model",
            )
        if any("*" in value or "?" in value for value in values):
            raise QueryError(field_name, f"a unique key of {operation} cannot hold wildcards")
        if required_level != level and len(values) > 1:
            raise QueryError(
                field_name, f"must be a single value above the {level} level of {operation}"
            )


def _apply_character_set(dataset: Dataset, context: _Context) -> None:
    declared = dataset.get(_SPECIFIC_CHARACTER_SET)
    if declared is None or declared.is_empty:
        if declared is not None:
            del dataset[_SPECIFIC_CHARACTER_SET]
        if context.non_ascii_text:
            dataset.SpecificCharacterSet = "ISO_IR 192"
        return
    terms = _element_values(declared)
    for term in terms:
        if term and term not in pydicom_charset.python_encoding:
            raise QueryError("query.SpecificCharacterSet", f"{term!r} is not a DICOM character set")
    if len(terms) == 1 and "2022" not in terms[0]:
        codec = pydicom_charset.python_encoding[terms[0]]
        for field_name, text in context.non_ascii_text:
            try:
                text.encode(codec)
            except UnicodeEncodeError:
                raise QueryError(
                    field_name, f"cannot be encoded in the character set {terms[0]}"
                ) from None


def build_identifier(
    query: Mapping[str, object],
    level: str | None,
    *,
    model: str = "STUDY",
    operation: str = "C-FIND",
) -> Dataset:
    """Build and check the identifier of a C-FIND, C-MOVE or C-GET from a gateway query.

    ``level`` is PATIENT, STUDY, SERIES or IMAGE (any case; INSTANCE means IMAGE); None derives it
    from the query: QueryRetrieveLevel if given, else the deepest unique key present, else
    PATIENT for a Patient Root query of patient attributes only, else STUDY.
    """
    model = _normalize_model(model)
    operation = _normalize_operation(operation)
    if not isinstance(query, Mapping):
        raise QueryError("query", "expected a JSON object of DICOM keywords or tags")
    context = _Context(operation)
    dataset = _dataset(query, "query", context, top_level=True)

    if level is not None:
        level = normalize_level(level)
    if context.query_level is not None:
        if level is not None and level != context.query_level:
            raise QueryError(
                "level",
                f"{level} conflicts with query.QueryRetrieveLevel {context.query_level}",
            )
        level = context.query_level
    if level is None:
        level = _derive_level(dataset, model)
    if level == "PATIENT" and model == "STUDY":
        raise QueryError("level", "PATIENT level needs the Patient Root model")
    dataset.add(DataElement(_QUERY_RETRIEVE_LEVEL, "CS", level))

    if operation == "C-FIND":
        unique_tag, _, unique_vr = _UNIQUE_KEYS[level]
        if unique_tag not in dataset:
            dataset.add(DataElement(unique_tag, unique_vr, ""))
    else:
        _check_retrieve_keys(dataset, level, model, operation)
    _apply_character_set(dataset, context)
    return dataset


def encode_identifier(ds: Dataset, transfer_syntax: str) -> bytes:
    """Encode an identifier for the wire: no file meta, as the presentation context says."""
    try:
        dataset_encoding(transfer_syntax)
    except ValueError as exc:
        raise QueryError("transfer_syntax", str(exc)) from exc
    try:
        return write_dataset_bytes(ds, transfer_syntax)
    except (ValueError, AttributeError, TypeError, KeyError, OverflowError, struct.error) as exc:
        raise QueryError("query", f"cannot be encoded: {exc}") from exc


def identifier_from_dicom_json(obj: Mapping[str, object]) -> Dataset:
    """A DICOM JSON object (PS3.18 F.2), Harmony's query form, as an identifier Dataset.

    ``build_identifier`` accepts the same object and adds the level and checks; this function
    converts only.
    """
    if not isinstance(obj, Mapping):
        raise QueryError("query", "expected a DICOM JSON object")
    for key, attribute in obj.items():
        if not isinstance(key, str) or not re.fullmatch(r"[0-9A-Fa-f]{8}", key):
            raise QueryError(f"query.{key}", "DICOM JSON keys are 8 hexadecimal digits")
        if not isinstance(attribute, Mapping) or not isinstance(attribute.get("vr"), str):
            raise QueryError(f"query.{key}", 'expected an attribute object with a "vr"')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Dataset.from_json(dict(obj))
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as exc:
        raise QueryError("query", f"invalid DICOM JSON: {exc}") from exc
