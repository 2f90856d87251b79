"""The license registry (the "ERP"): loading a license, add, list, revoke, unbind an FQDN."""

from __future__ import annotations

import secrets
import string
from datetime import datetime
from typing import Any

from webmeeting.adapters import firestore as fs
from webmeeting.domain.licenses import License
from webmeeting.errors import Conflict, NotFound, WriteConflict
from webmeeting.services.pbx_data import purge_pbx

_ALPHABET = string.ascii_uppercase + string.digits


def license_from_doc(key: str, data: dict[str, Any]) -> License:
    return License(
        key=key,
        edition=data["edition"],
        expires_at=data["expires_at"],
        max_participants=data["max_participants"],
        recording=data["recording"],
        revoked=data.get("revoked", False),
        bound_fqdn=data.get("bound_fqdn"),
        bound_pbx_id=data.get("bound_pbx_id"),
    )


def load_license(key: str, transaction: Any = None) -> License | None:
    """The license ``key`` (None if unknown), read in ``transaction`` when given."""
    snap = fs.licenses().document(key).get(transaction=transaction) if key else None
    return license_from_doc(key, fs.data(snap)) if snap is not None and snap.exists else None


def _fields(*, edition: str, expires_at: datetime, max_participants: int, recording: bool) -> dict[str, Any]:
    return {
        "edition": edition,
        "expires_at": expires_at,
        "max_participants": max_participants,
        "recording": recording,
        "revoked": False,
        "bound_fqdn": None,
        "bound_pbx_id": None,
    }


def new_license_key(prefix: str = "WM") -> str:
    groups = ["".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(3)]
    return "-".join([prefix, *groups])


def add_license(
    *,
    edition: str,
    expires_at: datetime,
    max_participants: int,
    recording: bool,
    key: str | None = None,
) -> License:
    key = key or new_license_key()
    data = _fields(edition=edition, expires_at=expires_at, max_participants=max_participants, recording=recording)
    try:
        fs.create(fs.licenses().document(key), data)
    except WriteConflict as exc:  # anything else is not a conflict: it propagates as itself
        raise Conflict(f"license {key} already exists") from exc
    return license_from_doc(key, data)


def list_licenses() -> list[License]:
    return [license_from_doc(s.id, fs.data(s)) for s in fs.licenses().order_by("__name__").stream()]


def revoke_license(key: str) -> None:
    ref = fs.licenses().document(key)
    if not ref.get().exists:
        raise NotFound(f"no license {key}")
    ref.update({"revoked": True})


def unbind_fqdn(fqdn: str) -> str:
    """Release ``fqdn`` from its license and delete all data of its PBX (policy: "When a PBX
    FQDN is unbound from its license ... all the above data is deleted"). Returns the pbx_id."""
    fq_ref = fs.fqdns().document(fqdn.lower())
    snap = fq_ref.get()
    if not snap.exists:
        raise NotFound(f"{fqdn} is not bound to any license")
    pbx_id, key = snap.get("pbx_id"), snap.get("license_key")
    purge_pbx(pbx_id)
    writer = fs.Writer()
    writer.delete(fq_ref)
    writer.update(fs.licenses().document(key), {"bound_fqdn": None, "bound_pbx_id": None})
    writer.commit()
    return str(pbx_id)


def seed_licenses(keys: list[str], *, edition: str, expires_at: datetime, max_participants: int, recording: bool) -> None:
    """Create the given licenses if missing (idempotent; used by the local platform)."""
    for key in keys:
        ref = fs.licenses().document(key)
        if not ref.get().exists:
            ref.set(_fields(edition=edition, expires_at=expires_at, max_participants=max_participants, recording=recording))


__all__ = ["license_from_doc", "load_license", "add_license", "list_licenses", "revoke_license", "unbind_fqdn", "seed_licenses"]
