"""The tenancy filter of every search, in one place.

Whatever ranks (full text now; vectors and their fusion later), it is handed a `SearchScope`:
the caller's organisation and the channels (and direct conversations) the one permission
function lets it read at this moment. Rankers filter by it before they rank (store/search.py puts
it in the WHERE clause), and the service checks every hit against it again before answering, so a
ranker that forgot it could still not leak a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..identity.permissions import Access, Principal


@dataclass(frozen=True)
class SearchScope:
    org_id: str
    user_id: str
    channel_ids: frozenset[str]

    def allows(self, message: Mapping[str, Any]) -> bool:
        return message.get("org_id") == self.org_id and message.get("channel_id") in self.channel_ids


def scope_of(principal: Principal, access: Access) -> SearchScope:
    """What `principal` may search: its organisation's channels it may read (identity/permissions)."""
    return SearchScope(principal.org_id, principal.user_id, access.readable_channels(principal))
