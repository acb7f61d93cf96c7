"""The embedded PACS: a Query/Retrieve SCP over a folder (C-ECHO, -STORE, -FIND, -MOVE, -GET)."""

from .server import PACS
from .storage import ImportReport

__all__ = ["PACS", "ImportReport"]
