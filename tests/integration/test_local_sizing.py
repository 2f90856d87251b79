"""The local platform runs each function as production does: as many request threads as its
production concurrency (``webmeeting.routes.SIZING``, which terraform reads too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.launcher import Platform
from webmeeting import routes

pytestmark = pytest.mark.integration


def test_each_function_serves_as_many_requests_at_once_as_in_production(platform: Platform) -> None:
    running = {p.name.removeprefix("fn-"): p for p in platform.procs if p.name.startswith("fn-")}
    assert set(running) == set(routes.functions())
    for target, proc in running.items():
        environ = Path(f"/proc/{proc.popen.pid}/environ").read_bytes().split(b"\0")
        assert f"THREADS={routes.SIZING[target].concurrency}".encode() in environ, target
