"""The license registry (the "ERP"): add, list, revoke, unbind an FQDN."""

from __future__ import annotations

import secrets
import string
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc

from webmeeting.adapters import firestore as fs
from webmeeting.domain.licenses import License
from webmeeting.errors import Conflict, NotFound
from webmeeting.services.pbx_api import license_from_doc
from webmeeting.services.pbx_data import purge_pbx

_ALPHABET = string.ascii_uppercase + string.digits


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
    data: dict[str, Any] = {
        "edition": edition,
        "expires_at": expires_at,
        "max_participants": max_participants,
        "recording": recording,
        "revoked": False,
        "bound_fqdn": None,
        "bound_pbx_id": None,
    }
    try:
        fs.licenses().document(key).create(data)
    except gexc.AlreadyExists as exc:  # anything else is not a conflict: it propagates as itself
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
    batch = fs.client().batch()
    batch.delete(fq_ref)
    batch.update(fs.licenses().document(key), {"bound_fqdn": None, "bound_pbx_id": None})
    batch.commit()
    return str(pbx_id)


def seed_licenses(keys: list[str], *, edition: str, expires_at: datetime, max_participants: int, recording: bool) -> None:
    """Create the given licenses if missing (idempotent; used by the local platform)."""
    for key in keys:
        ref = fs.licenses().document(key)
        if not ref.get().exists:
            ref.set(
                {
                    "edition": edition,
                    "expires_at": expires_at,
                    "max_participants": max_participants,
                    "recording": recording,
                    "revoked": False,
                    "bound_fqdn": None,
                    "bound_pbx_id": None,
                }
            )


__all__ = ["add_license", "list_licenses", "revoke_license", "unbind_fqdn", "seed_licenses"]
