"""The seven Upper Layer PDUs of PS3.8 section 9.3 and their items, as plain data.

This module holds only the data types and constants; ``ul.codec`` turns them into bytes and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"
DEFAULT_MAX_PDU_LENGTH = 4 * 1024 * 1024  # what we announce unless told otherwise
PROTOCOL_VERSION = 1


class PDUType(IntEnum):
    ASSOCIATE_RQ = 0x01
    ASSOCIATE_AC = 0x02
    ASSOCIATE_RJ = 0x03
    P_DATA_TF = 0x04
    RELEASE_RQ = 0x05
    RELEASE_RP = 0x06
    ABORT = 0x07


class ItemType(IntEnum):
    APPLICATION_CONTEXT = 0x10
    PRESENTATION_CONTEXT_RQ = 0x20
    PRESENTATION_CONTEXT_AC = 0x21
    ABSTRACT_SYNTAX = 0x30
    TRANSFER_SYNTAX = 0x40
    USER_INFORMATION = 0x50
    MAXIMUM_LENGTH = 0x51
    IMPLEMENTATION_CLASS_UID = 0x52
    ASYNCHRONOUS_OPERATIONS_WINDOW = 0x53
    ROLE_SELECTION = 0x54
    IMPLEMENTATION_VERSION_NAME = 0x55
    SOP_CLASS_EXTENDED_NEGOTIATION = 0x56
    SOP_CLASS_COMMON_EXTENDED_NEGOTIATION = 0x57
    USER_IDENTITY_RQ = 0x58
    USER_IDENTITY_AC = 0x59


class PresentationContextResult(IntEnum):
    """Result/Reason of a presentation context item in an A-ASSOCIATE-AC (PS3.8 9.3.3.2)."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    NO_REASON = 2  # provider rejection, no reason
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
    TRANSFER_SYNTAXES_NOT_SUPPORTED = 4


class RejectResult(IntEnum):
    PERMANENT = 1
    TRANSIENT = 2


class RejectSource(IntEnum):
    SERVICE_USER = 1
    SERVICE_PROVIDER_ACSE = 2
    SERVICE_PROVIDER_PRESENTATION = 3


class AbortSource(IntEnum):
    SERVICE_USER = 0
    RESERVED = 1
    SERVICE_PROVIDER = 2


class AbortReason(IntEnum):
    """Reason/Diag of an A-ABORT sent by the service provider (PS3.8 9.3.8)."""

    NOT_SPECIFIED = 0
    UNRECOGNIZED_PDU = 1
    UNEXPECTED_PDU = 2
    RESERVED = 3
    UNRECOGNIZED_PDU_PARAMETER = 4
    UNEXPECTED_PDU_PARAMETER = 5
    INVALID_PDU_PARAMETER_VALUE = 6


# (source, reason) -> words, for A-ASSOCIATE-RJ (PS3.8 table 9-21)
REJECT_REASONS: dict[tuple[int, int], str] = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognized",
    (1, 7): "called AE title not recognized",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}
REJECT_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
REJECT_SOURCES = {
    1: "DICOM UL service-user",
    2: "DICOM UL service-provider (ACSE related function)",
    3: "DICOM UL service-provider (presentation related function)",
}
ABORT_SOURCES = {0: "DICOM UL service-user", 1: "reserved", 2: "DICOM UL service-provider"}
ABORT_REASONS = {
    0: "reason not specified",
    1: "unrecognized PDU",
    2: "unexpected PDU",
    3: "reserved",
    4: "unrecognized PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}


class PDUError(Exception):
    """Bytes that are not a valid PDU; ``reason`` is the A-ABORT reason the connection sends."""

    def __init__(self, message: str, reason: AbortReason = AbortReason.INVALID_PDU_PARAMETER_VALUE):
        super().__init__(message)
        self.reason = reason


# ----------------------------------------------------------------------------- items


@dataclass(slots=True)
class PresentationContextRQ:
    context_id: int  # odd, 1..255
    abstract_syntax: str
    transfer_syntaxes: list[str]


@dataclass(slots=True)
class PresentationContextAC:
    context_id: int
    result: int  # PresentationContextResult
    transfer_syntax: str  # meaningful only when result == ACCEPTANCE; may be "" otherwise


@dataclass(slots=True)
class AsyncOperationsWindow:
    max_invoked: int  # 0 = unlimited
    max_performed: int


@dataclass(slots=True)
class RoleSelection:
    sop_class_uid: str
    scu_role: bool
    scp_role: bool


@dataclass(slots=True)
class SOPClassExtended:
    sop_class_uid: str
    info: bytes


@dataclass(slots=True)
class SOPClassCommonExtended:
    sop_class_uid: str
    service_class_uid: str
    related_general_sop_classes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class UserIdentityRQ:
    """identity_type: 1 username, 2 username+passcode, 3 Kerberos, 4 SAML, 5 JWT."""

    identity_type: int
    positive_response_requested: bool
    primary_field: bytes
    secondary_field: bytes = b""


@dataclass(slots=True)
class UserIdentityAC:
    server_response: bytes


@dataclass(slots=True)
class UserInformation:
    max_length: int | None = DEFAULT_MAX_PDU_LENGTH  # 0 = unlimited; None = item absent
    implementation_class_uid: str = ""
    implementation_version_name: str | None = None
    async_ops_window: AsyncOperationsWindow | None = None
    role_selections: list[RoleSelection] = field(default_factory=list)
    sop_class_extended: list[SOPClassExtended] = field(default_factory=list)
    sop_class_common_extended: list[SOPClassCommonExtended] = field(default_factory=list)
    user_identity_rq: UserIdentityRQ | None = None
    user_identity_ac: UserIdentityAC | None = None


# ----------------------------------------------------------------------------- PDUs


@dataclass(slots=True)
class AssociateRQ:
    called_ae: str
    calling_ae: str
    presentation_contexts: list[PresentationContextRQ]
    user_info: UserInformation = field(default_factory=UserInformation)
    application_context: str = APPLICATION_CONTEXT_NAME
    protocol_version: int = PROTOCOL_VERSION


@dataclass(slots=True)
class AssociateAC:
    called_ae: str  # echoed back from the RQ (not to be tested, PS3.8)
    calling_ae: str
    presentation_contexts: list[PresentationContextAC]
    user_info: UserInformation = field(default_factory=UserInformation)
    application_context: str = APPLICATION_CONTEXT_NAME
    protocol_version: int = PROTOCOL_VERSION


@dataclass(slots=True)
class AssociateRJ:
    result: int  # RejectResult
    source: int  # RejectSource
    reason: int  # see REJECT_REASONS

    def describe(self) -> str:
        return (
            f"{REJECT_RESULTS.get(self.result, f'result {self.result}')}, "
            f"source: {REJECT_SOURCES.get(self.source, f'source {self.source}')}, "
            f"reason: {REJECT_REASONS.get((self.source, self.reason), f'reason {self.reason}')}"
        )


@dataclass(slots=True)
class PDV:
    """One presentation data value: a fragment of a DIMSE command or data set."""

    context_id: int
    is_command: bool
    is_last: bool
    data: bytes | memoryview


@dataclass(slots=True)
class PDataTF:
    pdvs: list[PDV]


@dataclass(slots=True)
class ReleaseRQ:
    pass


@dataclass(slots=True)
class ReleaseRP:
    pass


@dataclass(slots=True)
class Abort:
    source: int = AbortSource.SERVICE_USER
    reason: int = AbortReason.NOT_SPECIFIED

    def describe(self) -> str:
        src = ABORT_SOURCES.get(self.source, f"source {self.source}")
        if self.source == AbortSource.SERVICE_PROVIDER:
            return f"{src}, reason: {ABORT_REASONS.get(self.reason, f'reason {self.reason}')}"
        return src


PDU = AssociateRQ | AssociateAC | AssociateRJ | PDataTF | ReleaseRQ | ReleaseRP | Abort
