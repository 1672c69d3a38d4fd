"""Federation: delivering to and receiving from other nodes (issue 3).

``Federation`` (federation.py) is the service other layers call; ``PeerUnreachable``
is what ``request`` raises when a peer cannot be asked. The lifecycle hook for the app
lives in service.py (imported by node/app.py only, which keeps imports one-way).
"""

from typing import Any

from .federation import Federation
from .transport import PeerUnreachable

__all__ = ["FEDERATION", "Federation", "PeerUnreachable"]


def __getattr__(name: str) -> Any:
    # The app key lives in node/context.py, which imports this package: resolve it
    # lazily so ``node.federation.FEDERATION`` works without an import cycle.
    if name == "FEDERATION":
        from ..context import FEDERATION

        return FEDERATION
    raise AttributeError(name)
