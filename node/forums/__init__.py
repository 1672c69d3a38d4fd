"""The forum log engine: hub sequencing, replication, backfill, accountable hub, hub move."""

from ..context import FORUMS
from .core import FederationPort, ForumMetrics
from .engine import ForumEngine, SubmitResult, forums_ctx

__all__ = ["FORUMS", "FederationPort", "ForumEngine", "ForumMetrics", "SubmitResult", "forums_ctx"]
