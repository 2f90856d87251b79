"""The store: the Firestore client, the data layout, and the few ways services touch it.

Services import no Google SDK: they name collections through the functions below, query with
``query`` ((field, op, value) filters), write through a ``Writer`` (committed in batches or
applied to a transaction), run read-then-write logic with ``transactional`` (Firestore's
errors become ``errors.WriteConflict``), claim leased work with ``claim``, and use the field
transforms ``increment`` / ``maximum`` / ``array_union`` / ``array_remove``.

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
  sessions/{meeting_key}              the running (or last) session of a meeting
  participant_events/{event_id}       joins, leaves, reconnects from the MCUs
  mails/{mail_id}                     the mail outbox
  recordings/{recording_id}           recordings, raw tracks to MP4
  files/{id}, pdfs/{id}               files shared in a session, documents of a meeting
  polls/{id}, poll_runs/{id}/votes/{participant}
  statistics/{period}                 anonymous statistics
  mcus/{mcu_id}                       MCU registrations (heartbeats)
  meeting_purges/{meeting_key}        deleted meetings whose remains are yet to go
  config/{name}                       platform settings changed by admins (converters)
  operators/{email}                   who may use the operator console, with which role
  audit/{id}                          the operators' audit log (expire_at: TTL)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from webmeeting import runtime
from webmeeting.errors import WriteConflict

BATCH_LIMIT = 500  # Firestore's maximum writes per batch / transaction

Collection = firestore.CollectionReference
Document = firestore.DocumentReference
Query = firestore.Query
Transaction = firestore.Transaction
Filter = tuple[str, str, Any]  # (field, operator, value), e.g. ("pbx_id", "==", pbx_id)
T = TypeVar("T")

_client: firestore.Client | None = None
_lock = threading.Lock()


def client() -> firestore.Client:
    """The process's Firestore client, built on first use (no I/O at import)."""
    global _client
    with _lock:
        if _client is None:
            _client = firestore.Client(project=runtime.backends().project or None)
        return _client


def reset_client() -> None:
    """Forget the client (tests switch projects between runs)."""
    global _client
    with _lock:
        _client = None


def data(snap: Any) -> dict[str, Any]:
    """A snapshot's fields ({} for a missing document)."""
    return snap.to_dict() or {}


# --- the layout -----------------------------------------------------------------------------------


def collection(name: str) -> Collection:
    return client().collection(name)


def licenses() -> Collection:
    return collection("licenses")


def fqdns() -> Collection:
    return collection("fqdns")


def pbxs() -> Collection:
    return collection("pbxs")


def extensions(pbx_id: str) -> Collection:
    return pbxs().document(pbx_id).collection("extensions")


def manifest(pbx_id: str) -> Collection:
    return pbxs().document(pbx_id).collection("manifest")


def meetings() -> Collection:
    return collection("meetings")


def vanity_links() -> Collection:
    return collection("vanity_links")


def nonces() -> Collection:
    return collection("nonces")


def reports() -> Collection:
    return collection("reports")


def sessions() -> Collection:
    return collection("sessions")


def participant_events() -> Collection:
    return collection("participant_events")


def mails() -> Collection:
    return collection("mails")


def recordings() -> Collection:
    return collection("recordings")


def files() -> Collection:
    return collection("files")


def pdfs() -> Collection:
    return collection("pdfs")


def polls() -> Collection:
    return collection("polls")


def poll_runs() -> Collection:
    return collection("poll_runs")


def votes(run_id: str) -> Collection:
    return poll_runs().document(run_id).collection("votes")


def statistics() -> Collection:
    return collection("statistics")


def mcus() -> Collection:
    return collection("mcus")


def meeting_purges() -> Collection:
    return collection("meeting_purges")


def config(name: str) -> Document:
    return collection("config").document(name)


def operators() -> Collection:
    return collection("operators")


def audit() -> Collection:
    return collection("audit")


# --- reading ----------------------------------------------------------------------------------------


def query(
    source: Any,
    *filters: Filter,
    order_by: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> Any:
    """``source`` (a collection, or ``group("extensions")``) narrowed by ``filters`` (all must
    hold), ordered and limited. Multi-field queries need their composite index in
    ``firestore_schema.INDEXES`` (a test in tests/deploy finds every call)."""
    q = source
    for field, op, value in filters:
        q = q.where(filter=firestore.FieldFilter(field, op, value))
    if order_by:
        q = q.order_by(order_by, direction=firestore.Query.DESCENDING if descending else firestore.Query.ASCENDING)
    if limit is not None:
        q = q.limit(limit)
    return q


def group(name: str) -> Any:
    """All collections called ``name`` (a collection-group query's source)."""
    return client().collection_group(name)


def count(q: Any) -> int:
    """How many documents ``q`` matches (an aggregation: no documents are read)."""
    result: Any = q.count().get()
    return int(result[0][0].value)


# --- field transforms -------------------------------------------------------------------------------


def increment(n: int | float) -> Any:
    return firestore.Increment(n)


def maximum(n: int | float) -> Any:
    return firestore.Maximum(n)


def array_union(values: list[Any]) -> Any:
    return firestore.ArrayUnion(values)


def array_remove(values: list[Any]) -> Any:
    return firestore.ArrayRemove(values)


# --- writing ----------------------------------------------------------------------------------------


def _translated(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (gexc.AlreadyExists, gexc.Conflict) as exc:  # Aborted is a Conflict: the race was lost
        raise WriteConflict("a concurrent write got there first") from exc


def create(ref: Document, fields: dict[str, Any]) -> None:
    """Create a document that must not exist yet (``WriteConflict`` if it does)."""
    _translated(lambda: ref.create(fields))


def transactional(fn: Callable[[Transaction], T]) -> T:
    """Run ``fn`` in a transaction (retried by Firestore when contended): every read through
    ``ref.get(transaction=tx)`` before the first write. A create of an existing document or a
    race lost for good raises ``WriteConflict``; the project's own errors pass as they are."""
    return _translated(lambda: firestore.transactional(fn)(client().transaction()))


def recursive_delete(ref: Any) -> None:
    """A document or collection with everything below it."""
    client().recursive_delete(ref)


class Writer:
    """Collects writes; commits them in batches of at most ``BATCH_LIMIT``, or applies them to
    a transaction.

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

    def apply(self, target: Any) -> None:
        """Put every collected write into ``target`` (a transaction or a batch), in order."""
        for op, ref, fields in self.ops:
            if op == "set":
                target.set(ref, fields or {})
            elif op == "create":
                target.create(ref, fields or {})
            elif op == "update":
                target.update(ref, fields or {})
            else:
                target.delete(ref)

    def commit(self) -> None:
        """Commit in batches (``WriteConflict`` when a create finds its document)."""
        for chunk in self.chunks():
            batch = client().batch()
            part = Writer()
            part.ops = chunk
            part.apply(batch)
            _translated(batch.commit)
            self.commits += 1
        self.ops.clear()


# --- leased work ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """Work a worker takes for a while: a document whose ``status`` field moves from one of
    ``claimable`` to ``busy`` with ``lease_until`` = now + ``duration``; a busy document whose
    lease ran out is claimable again (its worker vanished). ``prefix`` nests both fields
    (``"push."``: ``push.status``, ``push.lease_until``)."""

    busy: str
    duration: timedelta
    claimable: tuple[str, ...] = ("pending",)
    prefix: str = ""

    def _get(self, doc: dict[str, Any], name: str) -> Any:
        if not self.prefix:
            return doc.get(name)
        return (doc.get(self.prefix.rstrip(".")) or {}).get(name)


def claim(
    ref: Document,
    lease: Lease,
    now: datetime,
    *,
    extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    mine: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any] | str:
    """Take ``ref``'s work in one transaction (two workers cannot both hold it). Returns the
    document (with the claim's fields) or why not: ``unknown``, or its current status.
    ``extra(doc)``: more fields the claim writes; ``mine(doc)``: a busy document this caller
    already holds (a rerun of the same worker) is claimable under a live lease too."""

    def run(tx: Transaction) -> dict[str, Any] | str:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            return "unknown"
        doc = data(snap)
        status = lease._get(doc, "status") or lease.claimable[0]
        if status == lease.busy:
            until = lease._get(doc, "lease_until")
            if (until is not None and until < now) or (mine is not None and mine(doc)):
                status = lease.claimable[0]
        if status not in lease.claimable:
            return str(status)
        update = {f"{lease.prefix}status": lease.busy, f"{lease.prefix}lease_until": now + lease.duration}
        update |= extra(doc) if extra else {}
        tx.update(ref, update)
        return doc | update

    return transactional(run)
