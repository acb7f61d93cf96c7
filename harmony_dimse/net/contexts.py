"""Presentation contexts: the SOP classes and transfer syntaxes we propose and accept by default."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydicom._uid_dict import UID_dictionary

from ..ul.pdu import PresentationContextRQ

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"

UNCOMPRESSED = (EXPLICIT_VR_LE, IMPLICIT_VR_LE)

QR_MODELS: dict[str, dict[str, str]] = {
    "STUDY": {"C-FIND": STUDY_ROOT_FIND, "C-MOVE": STUDY_ROOT_MOVE, "C-GET": STUDY_ROOT_GET},
    "PATIENT": {
        "C-FIND": PATIENT_ROOT_FIND,
        "C-MOVE": PATIENT_ROOT_MOVE,
        "C-GET": PATIENT_ROOT_GET,
    },
}

ALL_TRANSFER_SYNTAXES: tuple[str, ...] = tuple(
    uid for uid, entry in UID_dictionary.items() if entry[1] == "Transfer Syntax"
)
# The transfer syntaxes in which we accept instances back (C-GET) or take them in (SCP): we keep
# the bytes as sent. Peers limit how many syntaxes one context may carry (DCMTK: 50), so this is
# the set met in practice rather than every syntax in the dictionary.
RECEIVE_TRANSFER_SYNTAXES: tuple[str, ...] = (
    *UNCOMPRESSED,
    DEFLATED_EXPLICIT_VR_LE,
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.100",  # MPEG2 MP@ML
    "1.2.840.10008.1.2.4.102",  # MPEG-4 AVC/H.264 HP/4.1
    "1.2.840.10008.1.2.4.107",  # HEVC/H.265 Main
)
# What an SCP of ours recognises in a proposal (storage keeps any of these as sent).
ACCEPTABLE_TRANSFER_SYNTAXES: frozenset[str] = frozenset(ALL_TRANSFER_SYNTAXES) - {EXPLICIT_VR_BE}
STORAGE_SOP_CLASSES: frozenset[str] = frozenset(
    uid
    for uid, entry in UID_dictionary.items()
    if entry[1] == "SOP Class"
    and entry[0].endswith("Storage")
    and uid.startswith("1.2.840.10008.5.1.4.")
)

# What C-GET asks the peer to send back by default: the classes met in everyday imaging.
COMMON_STORAGE_SOP_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray (presentation)
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray (processing)
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography (presentation)
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame
    "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic
    "1.2.840.10008.5.1.4.1.1.20",  # Nuclear Medicine
    "1.2.840.10008.5.1.4.1.1.128",  # PET Image
    "1.2.840.10008.5.1.4.1.1.481.1",  # RT Image
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set
    "1.2.840.10008.5.1.4.1.1.481.5",  # RT Plan
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.66",  # Raw Data
)


@dataclass(slots=True, frozen=True)
class ContextSpec:
    """A presentation context to propose: abstract syntax, transfer syntaxes, and SCP/SCU roles."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...] = UNCOMPRESSED
    scu_role: bool | None = None  # None: no role selection item
    scp_role: bool | None = None


@dataclass(slots=True, frozen=True)
class AcceptedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    scu_role: bool = True
    scp_role: bool = False


def default_scu_contexts(
    *,
    storage: Iterable[tuple[str, str]] = (),
    get_storage_classes: Sequence[str] = (),
) -> list[ContextSpec]:
    """Verification, both Q/R roots for FIND/MOVE/GET, plus storage contexts.

    ``storage``: (SOP class, transfer syntax) pairs of the datasets to send; each gets the dataset's
    own transfer syntax first, then the uncompressed ones. ``get_storage_classes``: SOP classes that
    C-GET may send back, proposed with the SCP role.
    """
    specs = [ContextSpec(VERIFICATION, (IMPLICIT_VR_LE, EXPLICIT_VR_LE))]
    for model in ("STUDY", "PATIENT"):
        for sop in QR_MODELS[model].values():
            specs.append(ContextSpec(sop))
    by_class: dict[str, list[str]] = {}
    for sop_class, ts in storage:
        syntaxes = by_class.setdefault(sop_class, [])
        if ts not in syntaxes:
            syntaxes.append(ts)
    for sop_class, syntaxes in by_class.items():
        # one context per stored syntax, so a compressed instance is never forced to convert
        for ts in syntaxes:
            ordered = (ts, *[u for u in UNCOMPRESSED if u != ts])
            specs.append(ContextSpec(sop_class, ordered))
    for sop_class in get_storage_classes:
        specs.append(
            ContextSpec(sop_class, RECEIVE_TRANSFER_SYNTAXES, scu_role=False, scp_role=True)
        )
    return specs


def to_rq_items(specs: Sequence[ContextSpec]) -> list[PresentationContextRQ]:
    """Number the contexts 1, 3, 5, ... as PS3.8 requires (at most 128)."""
    if len(specs) > 128:
        raise ValueError(f"{len(specs)} presentation contexts proposed, at most 128 allowed")
    return [
        PresentationContextRQ(2 * i + 1, spec.abstract_syntax, list(spec.transfer_syntaxes))
        for i, spec in enumerate(specs)
    ]
