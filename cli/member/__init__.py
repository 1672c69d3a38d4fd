"""The member client library: a device's keys, its session, and forum operations.

Used by the member CLI (``peerforum client`` / ``peerforum forum``), the integration
tests and, later, the web client's tests. Synchronous; all crypto happens here.
"""

from .api import MemberApiError
from .client import MemberClient
from .profile import Profile, ProfileError
from .roster import GhostMemberError

__all__ = ["GhostMemberError", "MemberApiError", "MemberClient", "Profile", "ProfileError"]
