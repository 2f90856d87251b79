"""The platform's one clock: every service reads ``now`` from here.

Production: the system clock. Locally, ``WEBMEETING_TIME_OFFSET_S`` shifts it forward
(seconds, may be large), and ``WEBMEETING_CLOCK_FILE`` names a file holding an offset in
seconds that is re-read when it changes, so a test can move the time of running processes.
Unit tests pass a ``FixedClock``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from webmeeting.settings import Backends


class Clock(Protocol):
    def now(self) -> datetime:
        """Platform time, timezone-aware UTC: what retention and bookkeeping use."""
        ...

    def wall(self) -> datetime:
        """Real time, never shifted: what freshness checks against other machines' clocks
        (request signature timestamps) use."""
        ...


@dataclass
class FixedClock:
    """A clock that moves only when told to."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def wall(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclass
class SystemClock:
    """System time plus a fixed offset plus an optional offset file."""

    offset_s: float = 0.0
    offset_file: Path | None = None
    _cache: tuple[float, float] = field(default=(-1.0, 0.0), repr=False)

    def _file_offset(self) -> float:
        if self.offset_file is None:
            return 0.0
        try:
            mtime = self.offset_file.stat().st_mtime
        except FileNotFoundError:
            return 0.0
        if mtime != self._cache[0]:
            text = self.offset_file.read_text().strip()
            self._cache = (mtime, float(text) if text else 0.0)
        return self._cache[1]

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_s + self._file_offset())

    def wall(self) -> datetime:
        return datetime.now(UTC)


def clock_from_env(env: Backends | Mapping[str, str]) -> SystemClock:
    """The clock the configuration asks for: ``Backends`` (or the variables it reads)."""
    b = env if isinstance(env, Backends) else Backends.from_env(dict(env))
    return SystemClock(offset_s=b.clock_offset_s, offset_file=Path(b.clock_file) if b.clock_file else None)
