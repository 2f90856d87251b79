"""Counts billable Firestore operations made through a client, at the RPC layer.

Reads: one per document returned by a lookup or query (a query returning nothing costs one),
one per aggregation query (per 1,000 index entries; our counts stay below that).
Writes: one per write in a commit (batch or transaction), deletes included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Meter:
    reads: int = 0
    writes: int = 0
    commits: int = 0

    def reset(self) -> None:
        self.reads = self.writes = self.commits = 0


def install(client: Any) -> Meter:
    """Wrap ``client``'s RPC stub; returns the meter it feeds."""
    api = client._firestore_api  # the GAPIC client all reads and writes go through
    meter = Meter()
    real_get, real_query, real_agg, real_commit = api.batch_get_documents, api.run_query, api.run_aggregation_query, api.commit

    def batch_get_documents(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for resp in real_get(*args, **kwargs):
            meter.reads += 1
            yield resp

    def run_query(*args: Any, **kwargs: Any) -> Iterator[Any]:
        seen = 0
        for resp in real_query(*args, **kwargs):
            if resp.document and resp.document.name:
                seen += 1
            yield resp
        meter.reads += max(seen, 1)

    def run_aggregation_query(*args: Any, **kwargs: Any) -> Iterator[Any]:
        meter.reads += 1
        yield from real_agg(*args, **kwargs)

    def commit(*args: Any, **kwargs: Any) -> Any:
        request = kwargs.get("request") or (args[0] if args else {})
        writes = request.get("writes", []) if isinstance(request, dict) else request.writes
        meter.writes += len(writes)
        meter.commits += 1
        return real_commit(*args, **kwargs)

    api.batch_get_documents = batch_get_documents
    api.run_query = run_query
    api.run_aggregation_query = run_aggregation_query
    api.commit = commit
    return meter
