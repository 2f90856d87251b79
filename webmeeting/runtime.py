"""Per-process singletons of a deployable: settings, backends and clock, built on first use.
``reset()`` forgets them (a process whose environment changed: the launcher, tests)."""

from __future__ import annotations

from functools import lru_cache

from webmeeting.clock import SystemClock, clock_from_env
from webmeeting.settings import Backends, Settings, set_environment


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()


@lru_cache(maxsize=1)
def backends() -> Backends:
    return Backends.from_env()


@lru_cache(maxsize=1)
def clock() -> SystemClock:
    return clock_from_env(backends())


def reset() -> None:
    settings.cache_clear()
    backends.cache_clear()
    clock.cache_clear()


def use_environment(values: dict[str, str]) -> None:
    """Point this process at a platform (the admin CLI's ``--local``, the launcher's own
    process, benchmarks): ``values`` join the environment, and the settings are read again."""
    set_environment(values)
    reset()
