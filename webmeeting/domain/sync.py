"""Planning a PBX sync: a pure diff of the PBX's full extension list against the manifest.

The manifest is the platform's compact record of what it last stored for each extension
(fingerprint, status, vanity hash, Quick Meeting key). Planning reads only the manifest, so an
unchanged re-sync writes no extension or meeting document, and a sync that changes k of n
extensions writes O(k) documents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from webmeeting.domain.api import Extension, is_email

MANIFEST_SHARDS = 16  # manifest documents per PBX; keeps each well under Firestore's 1 MiB


@dataclass(frozen=True)
class ManifestEntry:
    """What the platform stored for one extension at the last committed sync."""

    fingerprint: str  # hash of the extension's synced fields
    enabled: bool
    reason: str | None  # why disabled; None when enabled
    vanity: str | None  # hash of the case-folded vanity name it holds, if enabled with one
    quick_key: str | None  # its Quick Meeting key, assigned when first enabled

    def encode(self) -> str:
        return "|".join(
            [self.fingerprint, "1" if self.enabled else "0", self.reason or "", self.vanity or "", self.quick_key or ""]
        )

    @classmethod
    def decode(cls, text: str) -> ManifestEntry:
        fp, enabled, reason, vanity, quick = text.split("|")
        return cls(fp, enabled == "1", reason or None, vanity or None, quick or None)


@dataclass(frozen=True)
class ExtensionState:
    """The stored form of one extension after this sync."""

    ext: Extension
    entry: ManifestEntry


@dataclass
class SyncPlan:
    upserts: list[ExtensionState] = field(default_factory=list)  # extension docs to (re)write
    deletions: list[str] = field(default_factory=list)  # vanished extension numbers
    new_quick_meetings: list[ExtensionState] = field(default_factory=list)  # quick meetings to create
    results: list[ExtensionState] = field(default_factory=list)  # every extension, request order
    manifest: dict[str, ManifestEntry] = field(default_factory=dict)  # the new manifest

    @property
    def changed(self) -> bool:
        return bool(self.upserts or self.deletions or self.new_quick_meetings)

    def changed_shards(self, old: Mapping[str, ManifestEntry]) -> set[int]:
        numbers = {s.ext.number for s in self.upserts} | set(self.deletions)
        numbers |= {n for n, e in self.manifest.items() if old.get(n) != e}
        return {shard_of(n) for n in numbers}


def shard_of(number: str) -> int:
    return int(hashlib.sha256(number.encode()).hexdigest()[:8], 16) % MANIFEST_SHARDS


def fingerprint(ext: Extension) -> str:
    data = json.dumps(ext.model_dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def normalize_vanity(vanity: str | None) -> str | None:
    if vanity is None or not vanity.strip():
        return None
    return vanity.strip()


def vanity_hash(vanity: str) -> str:
    return hashlib.sha256(vanity.casefold().encode()).hexdigest()[:16]


def base_reason(ext: Extension) -> str | None:
    """Why an extension cannot use WebMeeting on its own merits (vanity clashes aside)."""
    email = (ext.email or "").strip()
    if not email:
        return "missing_email"
    if not is_email(email):
        return "invalid_email"
    if not (ext.first_name or "").strip() and not (ext.last_name or "").strip():
        return "missing_name"
    vanity = normalize_vanity(ext.vanity_name)
    if vanity is not None and ("/" in vanity or "\\" in vanity or vanity in {".", ".."}):
        return "invalid_vanity"
    return None


def plan_sync(
    incoming: Iterable[Extension],
    manifest: Mapping[str, ManifestEntry],
    quick_key_for: Callable[[str], str],
) -> SyncPlan:
    """Diff ``incoming`` (the PBX's full list, numbers unique) against ``manifest``.

    Vanity names are unique per PBX, case-insensitively: an extension that already held a name
    keeps it; otherwise the first in list order wins and later claimants are disabled with
    ``vanity_taken``. ``quick_key_for(number)`` gives the key of a Quick Meeting created now.
    """
    exts = list(incoming)
    reasons = {e.number: base_reason(e) for e in exts}

    holders: dict[str, str] = {}  # vanity hash -> number
    claimants = [(e.number, vanity_hash(v)) for e in exts if reasons[e.number] is None and (v := normalize_vanity(e.vanity_name))]
    for number, vh in claimants:  # previous holders first
        old = manifest.get(number)
        if old is not None and old.vanity == vh and vh not in holders:
            holders[vh] = number
    for number, vh in claimants:
        holders.setdefault(vh, number)
        if holders[vh] != number:
            reasons[number] = "vanity_taken"

    plan = SyncPlan()
    for ext in exts:
        reason = reasons[ext.number]
        enabled = reason is None
        old = manifest.get(ext.number)
        quick_key = old.quick_key if old else None
        new_quick = enabled and quick_key is None
        if new_quick:
            quick_key = quick_key_for(ext.number)
        vanity = normalize_vanity(ext.vanity_name)
        entry = ManifestEntry(
            fingerprint=fingerprint(ext),
            enabled=enabled,
            reason=reason,
            vanity=vanity_hash(vanity) if enabled and vanity else None,
            quick_key=quick_key,
        )
        state = ExtensionState(ext, entry)
        plan.manifest[ext.number] = entry
        plan.results.append(state)
        if entry != old:
            plan.upserts.append(state)
        if new_quick:
            plan.new_quick_meetings.append(state)
    incoming_numbers = {e.number for e in exts}
    plan.deletions = sorted(n for n in manifest if n not in incoming_numbers)
    return plan
