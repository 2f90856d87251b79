"""Per-process singletons of a deployable: settings and clock, built on first use."""

from __future__ import annotations

from functools import lru_cache

from webmeeting.clock import SystemClock, clock_from_env
from webmeeting.settings import Settings


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()


@lru_cache(maxsize=1)
def clock() -> SystemClock:
    return clock_from_env()
