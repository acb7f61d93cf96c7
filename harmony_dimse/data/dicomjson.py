"""Encoded DICOM data sets -> DICOM JSON (PS3.18 annex F.2), straight from the bytes.

This is the hot path of every C-FIND answer the gateway relays: the identifier bytes are walked once
with precompiled structs, without building a pydicom Dataset. pydicom is used only for its data
dictionary (the VR of implicit VR elements, looked up once per tag and cached) and for the rare
ISO 2022 text that switches character sets with escape sequences.

Output follows PS3.18 F.2 and agrees with ``pydicom.Dataset.to_json_dict()`` except where the
standard and pydicom part ways (see ``KNOWN_DIFFERENCES_FROM_PYDICOM``).
"""

from __future__ import annotations

import base64
import struct
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

import msgspec
from pydicom import charset as pydicom_charset
from pydicom.datadict import dictionary_VR, private_dictionary_VR

from harmony_dimse.data.encoding import LONG_HEADER_VRS

__all__ = [
    "KNOWN_DIFFERENCES_FROM_PYDICOM",
    "DicomJSONError",
    "dataset_bytes_to_json",
    "dataset_bytes_to_json_bytes",
    "encode_json",
]

KNOWN_DIFFERENCES_FROM_PYDICOM: Final = (
    "group length elements (gggg,0000) are left out (pydicom keeps them)",
    "a sequence with no items has no 'Value' (pydicom writes 'Value': [])",
    "an empty value inside a multi-valued element is null (pydicom writes '')",
    "trailing spaces are stripped from every value of a multi-valued string (pydicom strips "
    "only the end of the whole element)",
    "a PN component group that is empty is left out, a PN value with none is null "
    "(pydicom writes '' for empty groups before a non-empty one)",
    "a DS value written as an integer stays an int (pydicom makes every DS a float; equal in JSON)",
    "implicit VR 'US or SS' without a PixelRepresentation seen before is US; implicit "
    "'US or OW' and 'US or SS or OW' are OW",
)


class DicomJSONError(ValueError):
    """The bytes are not a well-formed data set in the transfer syntax they were said to be in."""


_ITEM: Final = 0xFFFEE000
_ITEM_DELIMITER: Final = 0xFFFEE00D
_SEQUENCE_DELIMITER: Final = 0xFFFEE0DD
_SPECIFIC_CHARACTER_SET: Final = 0x00080005
_PIXEL_REPRESENTATION: Final = 0x00280103
_UNDEFINED_LENGTH: Final = 0xFFFFFFFF
_MAX_DEPTH: Final = 64
_TAG_KEY_CACHE_SIZE: Final = 16384

_TAG_AND_LONG_LENGTH = struct.Struct("<HHI")
_EXPLICIT_SHORT_HEADER = struct.Struct("<HH2sH")
_LONG_LENGTH = struct.Struct("<I")

_LONG_HEADER_VRS: Final = LONG_HEADER_VRS
_ALL_VRS: Final = frozenset(
    {
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
        "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
        "UR", "US", "UT", "UV",
    }
)  # fmt: skip
_VR_FROM_BYTES: Final = {vr.encode("ascii"): vr for vr in _ALL_VRS}

Encodings = tuple[str, ...]
_DEFAULT_ENCODINGS: Final[Encodings] = ("iso8859",)  # pydicom's name for the default repertoire
_ESCAPE = b"\x1b"
_PN_GROUP_NAMES: Final = ("Alphabetic", "Ideographic", "Phonetic")


# --- value converters: raw value bytes -> the JSON "Value" list, or None when empty ---------------


def _latin_strings(raw: bytes) -> list[Any] | None:
    """CS, AS, DA, DT, TM: default repertoire, backslash-separated, trailing padding removed."""
    text = raw.decode("latin-1").rstrip(" \x00")
    if not text:
        return None
    if "\\" not in text:
        return [text]
    return [value.rstrip(" \x00") or None for value in text.split("\\")]


def _ae_strings(raw: bytes) -> list[Any] | None:
    text = raw.decode("latin-1").strip(" \x00")
    if not text:
        return None
    return [value.strip(" \x00") or None for value in text.split("\\")]


def _uid_strings(raw: bytes) -> list[Any] | None:
    text = raw.decode("latin-1").rstrip(" \x00")
    if not text:
        return None
    if "\\" not in text:
        return [text]
    return [value.rstrip(" \x00") or None for value in text.split("\\")]


def _ur_string(raw: bytes) -> list[Any] | None:
    text = raw.decode("latin-1").rstrip()
    return [text] if text else None


def _integer_string(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        as_float = float(value)  # pydicom accepts "12.0" as IS 12
        if not as_float.is_integer():
            raise ValueError(f"IS value {value!r} is not an integer") from None
        return int(as_float)


def _decimal_string(value: str) -> int | float:
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"DS value {value!r} is not a number") from None


def _number_strings(raw: bytes, convert: Callable[[str], int | float]) -> list[Any] | None:
    text = raw.decode("latin-1").strip(" \x00")
    if not text:
        return None
    if "\\" not in text:
        return [convert(text)]
    values: list[Any] = []
    for value in text.split("\\"):
        value = value.strip(" \x00")
        values.append(convert(value) if value else None)
    return values


def _integer_strings(raw: bytes) -> list[Any] | None:
    return _number_strings(raw, _integer_string)


def _decimal_strings(raw: bytes) -> list[Any] | None:
    return _number_strings(raw, _decimal_string)


def _decode_text(raw: bytes, encodings: Encodings) -> str:
    if _ESCAPE not in raw:
        try:
            return raw.decode(encodings[0])
        except UnicodeDecodeError:
            return raw.decode(encodings[0], errors="replace")
        except LookupError:
            return raw.decode("latin-1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom_charset.decode_bytes(raw, list(encodings), pydicom_charset.TEXT_VR_DELIMS)


def _text_strings(raw: bytes, encodings: Encodings) -> list[Any] | None:
    """SH, LO, UC: character-set text, backslash-separated."""
    text = _decode_text(raw, encodings).rstrip(" \x00")
    if not text:
        return None
    if "\\" not in text:
        return [text]
    return [value.rstrip(" \x00") or None for value in text.split("\\")]


def _single_text(raw: bytes, encodings: Encodings) -> list[Any] | None:
    """ST, LT, UT: one value; a backslash is just a character."""
    text = _decode_text(raw, encodings).rstrip(" \x00")
    return [text] if text else None


def _person_names(raw: bytes, encodings: Encodings) -> list[Any] | None:
    text = _decode_text(raw.rstrip(b" \x00"), encodings)
    if not text:
        return None
    names: list[Any] = []
    for value in text.split("\\"):
        groups = value.split("=")
        name = {
            group_name: group
            for group_name, group in zip(_PN_GROUP_NAMES, groups, strict=False)
            if group
        }
        names.append(name or None)
    return names


def _binary_numbers(code: str, size: int) -> Callable[[bytes], list[Any] | None]:
    def convert(raw: bytes) -> list[Any] | None:
        count, remainder = divmod(len(raw), size)
        if remainder:
            raise ValueError(f"length {len(raw)} is not a multiple of {size}")
        if not count:
            return None
        return list(struct.unpack(f"<{count}{code}", raw))

    return convert


def _attribute_tags(raw: bytes) -> list[Any] | None:
    count, remainder = divmod(len(raw), 4)
    if remainder:
        raise ValueError(f"length {len(raw)} is not a multiple of 4")
    if not count:
        return None
    halves = struct.unpack(f"<{2 * count}H", raw)
    return [f"{halves[i]:04X}{halves[i + 1]:04X}" for i in range(0, 2 * count, 2)]


_PLAIN_CONVERTERS: Final[dict[str, Callable[[bytes], list[Any] | None]]] = {
    "AE": _ae_strings,
    "AS": _latin_strings,
    "CS": _latin_strings,
    "DA": _latin_strings,
    "DT": _latin_strings,
    "TM": _latin_strings,
    "UI": _uid_strings,
    "UR": _ur_string,
    "IS": _integer_strings,
    "DS": _decimal_strings,
    "US": _binary_numbers("H", 2),
    "SS": _binary_numbers("h", 2),
    "UL": _binary_numbers("I", 4),
    "SL": _binary_numbers("i", 4),
    "UV": _binary_numbers("Q", 8),
    "SV": _binary_numbers("q", 8),
    "FL": _binary_numbers("f", 4),
    "FD": _binary_numbers("d", 8),
    "AT": _attribute_tags,
}
_CHARSET_CONVERTERS: Final[dict[str, Callable[[bytes, Encodings], list[Any] | None]]] = {
    "SH": _text_strings,
    "LO": _text_strings,
    "UC": _text_strings,
    "ST": _single_text,
    "LT": _single_text,
    "UT": _single_text,
    "PN": _person_names,
}
_TAG_KEYS: dict[int, str] = {}  # tag -> "GGGGEEEE", filled as tags are seen


# --- dictionary and character set lookups, cached ----------------------------------------------


@lru_cache(maxsize=8192)
def _implicit_vr(tag: int) -> str:
    """The VR of a public tag from pydicom's dictionary, 'UN' when the tag is unknown."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


@lru_cache(maxsize=4096)
def _private_vr(tag: int, creator: str) -> str:
    try:
        return private_dictionary_VR(tag, creator)
    except KeyError:
        return "UN"


@lru_cache(maxsize=256)
def _encodings_for(terms: tuple[str, ...]) -> Encodings:
    """Python codecs for the values of (0008,0005) Specific Character Set, as pydicom maps them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(pydicom_charset.convert_encodings(list(terms)))


def _encodings_for_default(default_charset: str) -> Encodings:
    terms = tuple(term.strip() for term in default_charset.split("\\"))
    for term in terms:
        if term and term not in pydicom_charset.python_encoding:
            try:
                "".encode(term)
            except LookupError:
                raise ValueError(f"unknown default character set {default_charset!r}") from None
    return _encodings_for(terms)


# --- the parser -----------------------------------------------------------------------------------


class _Parser:
    """One pass over one encoded data set; nested items are parsed recursively."""

    __slots__ = ("buffer",)

    def __init__(self, buffer: bytes) -> None:
        self.buffer = buffer

    def dataset(
        self,
        position: int,
        end: int,
        implicit_vr: bool,
        encodings: Encodings,
        pixel_representation: int | None,
        depth: int,
        delimited: bool,
    ) -> tuple[dict[str, dict[str, Any]], int]:
        """Parse elements up to ``end`` or, when ``delimited``, up to the item delimiter."""
        if depth > _MAX_DEPTH:
            raise DicomJSONError(f"sequences nested deeper than {_MAX_DEPTH} levels")
        # Locals for everything the loop touches: this loop is the hot path.
        buffer = self.buffer
        unpack_implicit = _TAG_AND_LONG_LENGTH.unpack_from
        unpack_explicit = _EXPLICIT_SHORT_HEADER.unpack_from
        vr_from_bytes = _VR_FROM_BYTES
        long_header_vrs = _LONG_HEADER_VRS
        charset_converters = _CHARSET_CONVERTERS
        plain_converters = _PLAIN_CONVERTERS
        tag_keys = _TAG_KEYS
        result: dict[str, dict[str, Any]] = {}
        private_creators: dict[int, str] | None = None
        while position < end:
            if position + 8 > end:
                raise DicomJSONError(f"truncated element header at offset {position}")
            if implicit_vr:
                group, element, length = unpack_implicit(buffer, position)
                if group == 0xFFFE:
                    return self._delimiter(result, position, group, element, delimited)
                tag = group << 16 | element
                vr = _implicit_vr(tag)
                position += 8
            else:
                group, element, vr_bytes, length = unpack_explicit(buffer, position)
                if group == 0xFFFE:
                    return self._delimiter(result, position, group, element, delimited)
                tag = group << 16 | element
                explicit_vr = vr_from_bytes.get(vr_bytes)
                if explicit_vr is None:
                    raise DicomJSONError(
                        f"({group:04X},{element:04X}) has invalid VR {vr_bytes!r} at {position}"
                    )
                vr = explicit_vr
                if vr in long_header_vrs:
                    if position + 12 > end:
                        raise DicomJSONError(f"truncated element header at offset {position}")
                    (length,) = _LONG_LENGTH.unpack_from(buffer, position + 8)
                    position += 12
                else:
                    position += 8

            # Items inside a UN value are implicit VR little endian (PS3.5 6.2.2).
            content_implicit_vr = implicit_vr
            if vr == "UN":
                content_implicit_vr = True
                if group & 1:
                    if 0x0010 <= element <= 0x00FF:
                        vr = "LO"  # private creator (PS3.5 7.8.1)
                    elif element >= 0x1000 and private_creators:
                        creator = private_creators.get(group << 8 | element >> 8)
                        if creator:
                            vr = _private_vr(tag, creator)
                elif not implicit_vr and length < 0xFFFF:
                    vr = _implicit_vr(tag)  # explicit 'UN' for a known tag, read as pydicom does
            if len(vr) > 2:
                vr = self._resolve_ambiguous(vr, length, pixel_representation)

            key = tag_keys.get(tag)
            if key is None:
                key = f"{tag:08X}"
                if len(tag_keys) < _TAG_KEY_CACHE_SIZE:
                    tag_keys[tag] = key

            if length == _UNDEFINED_LENGTH:
                if vr == "SQ" or vr == "UN":
                    # An undefined-length UN holds implicit VR little endian items (PS3.5 6.2.2).
                    items, position = self.sequence(
                        position,
                        None,
                        end,
                        content_implicit_vr,
                        encodings,
                        pixel_representation,
                        depth,
                    )
                    result[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
                    continue
                if vr != "OB" and vr != "OW":
                    raise DicomJSONError(f"({group:04X},{element:04X}) {vr} has undefined length")
                value_start = position
                position = self._skip_encapsulated(position, end)
                result[key] = {
                    "vr": vr,
                    "InlineBinary": base64.b64encode(buffer[value_start : position - 8]).decode(),
                }
                continue

            value_end = position + length
            if value_end > end:
                raise DicomJSONError(
                    f"({group:04X},{element:04X}) value of {length} bytes overruns the data"
                    f" (offset {position})"
                )
            if element == 0:
                position = value_end
                continue  # group length: meaningless once decoded
            if vr == "SQ":
                items, _ = self.sequence(
                    position,
                    value_end,
                    end,
                    content_implicit_vr,
                    encodings,
                    pixel_representation,
                    depth,
                )
                position = value_end
                result[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
                continue

            raw = buffer[position:value_end]
            position = value_end
            try:
                text_converter = charset_converters.get(vr)
                if text_converter is not None:
                    values = text_converter(raw, encodings)
                else:
                    converter = plain_converters.get(vr)
                    if converter is None:  # OB, OW, UN and the other binary VRs
                        if raw:
                            result[key] = {"vr": vr, "InlineBinary": base64.b64encode(raw).decode()}
                        else:
                            result[key] = {"vr": vr}
                        continue
                    values = converter(raw)
            except (ValueError, struct.error) as exc:
                raise DicomJSONError(f"({group:04X},{element:04X}) {vr}: {exc}") from None
            if values is None:
                result[key] = {"vr": vr}
                continue
            result[key] = {"vr": vr, "Value": values}
            if tag == _SPECIFIC_CHARACTER_SET:
                encodings = _encodings_for(tuple(value or "" for value in values))
            elif tag == _PIXEL_REPRESENTATION and vr == "US":
                pixel_representation = values[0]
            elif group & 1 and 0x0010 <= element <= 0x00FF and vr == "LO":
                if private_creators is None:
                    private_creators = {}
                private_creators[group << 8 | element] = values[0] or ""
        if delimited:
            raise DicomJSONError("item without its item delimiter")
        return result, position

    @staticmethod
    def _delimiter(
        result: dict[str, dict[str, Any]], position: int, group: int, element: int, delimited: bool
    ) -> tuple[dict[str, dict[str, Any]], int]:
        """An (FFFE,xxxx) tag among elements: the end of this item, or an error."""
        if (group << 16 | element) == _ITEM_DELIMITER and delimited:
            return result, position + 8
        raise DicomJSONError(f"unexpected ({group:04X},{element:04X}) at offset {position}")

    @staticmethod
    def _resolve_ambiguous(vr: str, length: int, pixel_representation: int | None) -> str:
        if vr == "US or SS":
            return "SS" if pixel_representation == 1 else "US"
        if vr == "OB or OW":
            return "OB" if length == _UNDEFINED_LENGTH else "OW"
        if vr in ("US or OW", "US or SS or OW"):
            return "OW"
        raise DicomJSONError(f"unsupported VR {vr!r}")

    def sequence(
        self,
        position: int,
        sequence_end: int | None,
        end: int,
        implicit_vr: bool,
        encodings: Encodings,
        pixel_representation: int | None,
        depth: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """Parse items until ``sequence_end`` or, when it is None, the sequence delimiter."""
        buffer = self.buffer
        limit = end if sequence_end is None else sequence_end
        items: list[dict[str, Any]] = []
        while position < limit:
            if position + 8 > limit:
                raise DicomJSONError(f"truncated item header at offset {position}")
            group, element, length = _TAG_AND_LONG_LENGTH.unpack_from(buffer, position)
            tag = group << 16 | element
            position += 8
            if tag == _ITEM:
                if length == _UNDEFINED_LENGTH:
                    item, position = self.dataset(
                        position,
                        limit,
                        implicit_vr,
                        encodings,
                        pixel_representation,
                        depth + 1,
                        True,
                    )
                else:
                    item_end = position + length
                    if item_end > limit:
                        raise DicomJSONError(f"item of {length} bytes overruns its sequence")
                    item, _ = self.dataset(
                        position,
                        item_end,
                        implicit_vr,
                        encodings,
                        pixel_representation,
                        depth + 1,
                        False,
                    )
                    position = item_end
                items.append(item)
            elif tag == _SEQUENCE_DELIMITER and sequence_end is None:
                return items, position
            else:
                raise DicomJSONError(
                    f"expected an item in a sequence, found ({group:04X},{element:04X})"
                )
        if sequence_end is None:
            raise DicomJSONError("sequence without its sequence delimiter")
        return items, position

    def _skip_encapsulated(self, position: int, end: int) -> int:
        """Walk encapsulated fragments; return the offset just after the sequence delimiter."""
        buffer = self.buffer
        while position + 8 <= end:
            group, element, length = _TAG_AND_LONG_LENGTH.unpack_from(buffer, position)
            tag = group << 16 | element
            position += 8
            if tag == _SEQUENCE_DELIMITER:
                return position
            if tag != _ITEM or length == _UNDEFINED_LENGTH or position + length > end:
                raise DicomJSONError(f"malformed encapsulated fragment at offset {position - 8}")
            position += length
        raise DicomJSONError("encapsulated value without its sequence delimiter")


def dataset_bytes_to_json(
    data: bytes | bytearray | memoryview,
    *,
    implicit_vr: bool = False,
    default_charset: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Decode an encoded little endian data set into a DICOM JSON object (PS3.18 F.2).

    ``default_charset`` (e.g. ``"ISO_IR 100"``) applies when the data set declares no
    (0008,0005) Specific Character Set. Malformed bytes raise ``DicomJSONError``; an unknown
    ``default_charset`` raises ``ValueError``.
    """
    buffer = data if isinstance(data, bytes) else bytes(data)
    encodings = (
        _DEFAULT_ENCODINGS if default_charset is None else _encodings_for_default(default_charset)
    )
    parser = _Parser(buffer)
    try:
        result, _ = parser.dataset(0, len(buffer), implicit_vr, encodings, None, 0, False)
    except DicomJSONError:
        raise
    except (struct.error, ValueError, UnicodeError, LookupError, OverflowError) as exc:
        raise DicomJSONError(f"malformed data set: {exc}") from exc
    return result


_ENCODER: Final = msgspec.json.Encoder()


def encode_json(obj: object) -> bytes:
    """Serialize a DICOM JSON object (or anything msgspec can encode) to UTF-8 JSON bytes."""
    return _ENCODER.encode(obj)


def dataset_bytes_to_json_bytes(
    data: bytes | bytearray | memoryview,
    *,
    implicit_vr: bool = False,
    default_charset: str | None = None,
) -> bytes:
    """``encode_json(dataset_bytes_to_json(...))``; msgspec's encoder is already the fast part."""
    return _ENCODER.encode(
        dataset_bytes_to_json(data, implicit_vr=implicit_vr, default_charset=default_charset)
    )
