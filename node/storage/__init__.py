"""Storage layer: the only place that knows SQL (see store.py for the API)."""

from .engine import SchemaTooNewError, SqliteEngine, StorageError
from .store import PEER_STATUSES, PeerKey, PeerRecord, PeerStatus, Rotation, Storage

__all__ = [
    "PEER_STATUSES",
    "PeerKey",
    "PeerRecord",
    "PeerStatus",
    "Rotation",
    "SchemaTooNewError",
    "SqliteEngine",
    "Storage",
    "StorageError",
]
