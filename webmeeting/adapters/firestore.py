"""Firestore adapter: the lazily built client and the collection layout.

Collections (docs/data-model.md describes every field):
  licenses/{license_key}              the license registry ("ERP")
  fqdns/{pbx_fqdn}                    FQDN -> license binding (uniqueness)
  pbxs/{pbx_id}                       an activated PBX
  pbxs/{pbx_id}/extensions/{number}   its synced extensions
  pbxs/{pbx_id}/manifest/{shard}      compact sync manifest (see domain.sync)
  meetings/{meeting_key}              scheduled and Quick Meetings
  vanity_links/{hash}                 vanity URL -> meeting key
  nonces/{pbx_id}-{hash}              replay protection (expire_at: TTL)
  reports/{report_id}                 meeting reports awaiting the PBX
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from google.cloud import firestore

BATCH_LIMIT = 500  # Firestore's maximum writes per batch / transaction

_client: firestore.Client | None = None
_lock = threading.Lock()


def client() -> firestore.Client:
    """The process's Firestore client, built on first use (no I/O at import)."""
    global _client
    with _lock:
        if _client is None:
            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
            _client = firestore.Client(project=project)
        return _client


def reset_client() -> None:
    """Forget the client (tests switch projects between runs)."""
    global _client
    with _lock:
        _client = None


def data(snap: Any) -> dict[str, Any]:
    """A snapshot's fields ({} for a missing document)."""
    return snap.to_dict() or {}


def licenses() -> firestore.CollectionReference:
    return client().collection("licenses")


def fqdns() -> firestore.CollectionReference:
    return client().collection("fqdns")


def pbxs() -> firestore.CollectionReference:
    return client().collection("pbxs")


def extensions(pbx_id: str) -> firestore.CollectionReference:
    return pbxs().document(pbx_id).collection("extensions")


def manifest(pbx_id: str) -> firestore.CollectionReference:
    return pbxs().document(pbx_id).collection("manifest")


def meetings() -> firestore.CollectionReference:
    return client().collection("meetings")


def vanity_links() -> firestore.CollectionReference:
    return client().collection("vanity_links")


def nonces() -> firestore.CollectionReference:
    return client().collection("nonces")


def reports() -> firestore.CollectionReference:
    return client().collection("reports")


class Writer:
    """Collects writes and commits them in batches of at most ``BATCH_LIMIT``.

    Batches commit in the order the writes were added; callers order their writes so that a
    failure between batches leaves a state the next (idempotent) attempt repairs.
    """

    def __init__(self) -> None:
        self.ops: list[tuple[str, Any, dict[str, Any] | None]] = []
        self.commits = 0

    def set(self, ref: Any, data: dict[str, Any]) -> None:
        self.ops.append(("set", ref, data))

    def create(self, ref: Any, data: dict[str, Any]) -> None:
        self.ops.append(("create", ref, data))

    def update(self, ref: Any, data: dict[str, Any]) -> None:
        self.ops.append(("update", ref, data))

    def delete(self, ref: Any) -> None:
        self.ops.append(("delete", ref, None))

    def __len__(self) -> int:
        return len(self.ops)

    def chunks(self) -> Iterator[list[tuple[str, Any, dict[str, Any] | None]]]:
        for i in range(0, len(self.ops), BATCH_LIMIT):
            yield self.ops[i : i + BATCH_LIMIT]

    def commit(self) -> None:
        for chunk in self.chunks():
            batch = client().batch()
            for op, ref, fields in chunk:
                if op == "set":
                    batch.set(ref, fields or {})
                elif op == "create":
                    batch.create(ref, fields or {})
                elif op == "update":
                    batch.update(ref, fields or {})
                else:
                    batch.delete(ref)
            batch.commit()
            self.commits += 1
        self.ops.clear()
