"""DIMSE messages over P-DATA (PS3.8 annex E): fragmenting into PDVs, and reassembling them.

``fragment`` cuts a command set and its data set into P-DATA-TF PDUs that respect the peer's
maximum PDU length, packing the command and the first data fragment into one PDU.
``MessageAssembler`` takes the PDVs of received P-DATA-TF PDUs and returns whole messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harmony_dimse.dimse.commands import DIMSEError, DimseMessage, decode_command
from harmony_dimse.ul.pdu import PDV, PDataTF

# Bytes a PDV costs besides its fragment: 4-byte item length, context ID, message control header.
PDV_OVERHEAD = 6
_UNLIMITED = 0xFFFFFFFF  # the PDU length field is 32 bits


def fragment(
    context_id: int,
    command: bytes,
    dataset: bytes | memoryview | None,
    max_pdu_length: int,
) -> list[PDataTF]:
    """P-DATA-TF PDUs carrying one DIMSE message; ``max_pdu_length`` 0 means unlimited.

    Every PDU's length (the sum of its PDV items, each 6 bytes plus its fragment) stays within
    ``max_pdu_length``. Data set fragments are memoryview slices of ``dataset``, not copies.
    """
    if max_pdu_length == 0:
        limit = _UNLIMITED
    elif max_pdu_length <= PDV_OVERHEAD:
        raise ValueError(
            f"max_pdu_length {max_pdu_length} leaves no room for data (a PDV costs {PDV_OVERHEAD})"
        )
    else:
        limit = min(max_pdu_length, _UNLIMITED)

    pdus: list[PDataTF] = []
    pdvs: list[PDV] = []
    room = limit
    streams: tuple[tuple[bytes | memoryview, bool], ...] = (
        ((command, True),) if dataset is None else ((command, True), (dataset, False))
    )
    for data, is_command in streams:
        total = len(data)
        view: memoryview | None = None
        position = 0
        while True:
            if room < PDV_OVERHEAD + (1 if position < total else 0):
                pdus.append(PDataTF(pdvs))
                pdvs = []
                room = limit
            take = min(total - position, room - PDV_OVERHEAD)
            end = position + take
            if position == 0 and end == total:
                piece: bytes | memoryview = data
            else:
                if view is None:
                    view = memoryview(data)
                piece = view[position:end]
            pdvs.append(PDV(context_id, is_command, end == total, piece))
            room -= PDV_OVERHEAD + take
            position = end
            if position == total:
                break
    pdus.append(PDataTF(pdvs))
    return pdus


@dataclass(slots=True)
class ReceivedMessage:
    context_id: int
    command: DimseMessage
    dataset: bytes | None  # None when the command announces no data set


def _stable(data: bytes | memoryview) -> bytes | memoryview:
    """``data`` itself when it cannot change under us (bytes, or a view of bytes), else a copy."""
    if isinstance(data, memoryview) and not isinstance(data.obj, bytes):
        return bytes(data)
    return data


def _join(parts: list[bytes | memoryview]) -> bytes:
    if len(parts) == 1:
        only = parts[0]
        return only if isinstance(only, bytes) else bytes(only)
    return b"".join(parts)


class MessageAssembler:
    """Collects PDVs into DIMSE messages, one message at a time (PS3.8 annex E rules).

    Fragments are kept as received (views over immutable bytes are not copied) and joined once
    when the message is complete. ``max_message_length`` (0 = unlimited) bounds command plus data
    set bytes of one message, so a peer cannot make us buffer without end.
    """

    __slots__ = (
        "_command",
        "_command_parts",
        "_context_id",
        "_dataset_parts",
        "_length",
        "_previous_without_dataset",
        "max_message_length",
    )

    def __init__(self, max_message_length: int = 0) -> None:
        self.max_message_length = max_message_length
        self._context_id: int | None = None
        self._command_parts: list[bytes | memoryview] = []
        self._command: DimseMessage | None = None  # set once the last command fragment arrived
        self._dataset_parts: list[bytes | memoryview] = []
        self._length = 0
        self._previous_without_dataset: str | None = None

    @property
    def in_progress(self) -> bool:
        """True when some fragments of a message arrived but not all."""
        return self._context_id is not None

    def reset(self) -> None:
        self._context_id = None
        self._command_parts = []
        self._command = None
        self._dataset_parts = []
        self._length = 0

    def _fail(self, message: str) -> DIMSEError:
        self.reset()
        self._previous_without_dataset = None
        return DIMSEError(message)

    def feed(self, pdvs: Iterable[PDV]) -> list[ReceivedMessage]:
        """Take the PDVs of one or more P-DATA-TF PDUs; return the messages they complete."""
        if self._context_id is None and type(pdvs) is list and len(pdvs) == 1:
            only = pdvs[0]
            if only.is_command and only.is_last and not self.max_message_length:
                # a whole command in one fragment, the usual response: no bookkeeping needed
                try:
                    command = decode_command(only.data)
                except DIMSEError as exc:
                    context = only.context_id
                    raise self._fail(f"bad command set on context {context}: {exc}") from None
                if not command.has_dataset:
                    self._previous_without_dataset = command.name
                    return [ReceivedMessage(only.context_id, command, None)]
                self._context_id = only.context_id
                self._previous_without_dataset = None
                self._command = command
                self._length = len(only.data)
                return []
        done: list[ReceivedMessage] = []
        for pdv in pdvs:
            if self._context_id is None:
                if not pdv.is_command:
                    if self._previous_without_dataset is not None:
                        raise self._fail(
                            f"data set fragment on context {pdv.context_id}, but the preceding "
                            f"{self._previous_without_dataset} announced no data set"
                        )
                    raise self._fail(
                        f"data set fragment on context {pdv.context_id} before any command"
                    )
                self._context_id = pdv.context_id
                self._previous_without_dataset = None
            elif pdv.context_id != self._context_id:
                raise self._fail(
                    f"fragment on presentation context {pdv.context_id} in the middle of a "
                    f"message on context {self._context_id}"
                )

            self._length += len(pdv.data)
            if self.max_message_length and self._length > self.max_message_length:
                raise self._fail(
                    f"message on context {self._context_id} exceeds {self.max_message_length} bytes"
                )

            if pdv.is_command:
                if self._command is not None:
                    raise self._fail(
                        f"command fragment after the last command fragment of {self._command.name}"
                    )
                self._command_parts.append(_stable(pdv.data))
                if not pdv.is_last:
                    continue
                parts = self._command_parts
                try:
                    command = decode_command(parts[0] if len(parts) == 1 else b"".join(parts))
                except DIMSEError as exc:
                    context = self._context_id
                    raise self._fail(f"bad command set on context {context}: {exc}") from None
                if command.has_dataset:
                    self._command = command
                    self._command_parts = []
                    continue
                done.append(ReceivedMessage(self._context_id, command, None))
                self.reset()
                self._previous_without_dataset = command.name
            else:
                command_done = self._command
                if command_done is None:
                    raise self._fail(
                        f"data set fragment on context {self._context_id} before the last "
                        "command fragment"
                    )
                self._dataset_parts.append(_stable(pdv.data))
                if pdv.is_last:
                    done.append(
                        ReceivedMessage(self._context_id, command_done, _join(self._dataset_parts))
                    )
                    self.reset()
        return done
