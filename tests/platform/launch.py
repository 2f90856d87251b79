"""Starting `make run`'s program (``python -m infra.run``) as the tests do."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from infra.launcher import ROOT

START_TIMEOUT_S = 90


def start_make_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """(the process, its state folder, its output file), once endpoints.json is written. The
    caller stops it (SIGINT); a start that fails is stopped here."""
    state, out = tmp_path / "local", tmp_path / "out.txt"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.run", "--state-dir", str(state)], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while not (state / "endpoints.json").exists():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
    except BaseException:
        proc.kill()
        proc.wait(timeout=30)
        raise
    return proc, state, out
