"""License rules (the "ERP" registry's records, judged at a given time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class License:
    key: str
    edition: str
    expires_at: datetime
    max_participants: int
    recording: bool
    revoked: bool = False
    bound_fqdn: str | None = None
    bound_pbx_id: str | None = None


def license_problem(lic: License | None, now: datetime) -> str | None:
    """Why ``lic`` cannot be used at ``now``, or None when it can."""
    if lic is None:
        return "license unknown"
    if lic.revoked:
        return "license revoked"
    if lic.expires_at <= now:
        return "license expired"
    return None
