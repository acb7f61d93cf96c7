"""harmony-dimse: an asyncio-native DICOM networking stack and HTTP-to-DICOM gateway.

The library in one screen::

    from harmony_dimse import connect, serve

    async with connect("127.0.0.1", 4242, called_aet="ORTHANC") as assoc:
        await assoc.echo()
        query = {"PatientName": "DOE*", "StudyInstanceUID": ""}
        async for match in assoc.find(query, level="STUDY"):
            print(match.StudyInstanceUID)

Names are imported lazily, so ``import harmony_dimse.ul`` does not pull in asyncio or pydicom.
"""

from importlib import import_module
from typing import Any

from .version import __version__

_EXPORTS = {
    "Association": "net.association",
    "associate": "net.association",
    "connect": "net.association",
    "DicomServer": "net.server",
    "SCPHandlers": "net.server",
    "serve": "net.server",
    "AssociationAborted": "net.errors",
    "AssociationRejected": "net.errors",
    "DicomError": "net.errors",
    "DicomTimeout": "net.errors",
    "DimseFailure": "net.errors",
    "NegotiationError": "net.errors",
    "PeerUnreachable": "net.errors",
    "AssociationPool": "net.pool",
    "PACS": "pacs",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harmony_dimse' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
