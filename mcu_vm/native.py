"""Build the MCU's native per-packet path (``mcu_vm/_fastfwd.c``) next to its source, with the
machine's C compiler and this Python's headers (Debian: ``gcc``, ``python3-dev``).

    python -m mcu_vm.native          # builds mcu_vm/_fastfwd<EXT_SUFFIX> when missing or older than its source
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "_fastfwd.c"


def target() -> Path:
    return HERE / f"_fastfwd{sysconfig.get_config_var('EXT_SUFFIX')}"


def build(force: bool = False) -> Path:
    out = target()
    if not force and out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    include = sysconfig.get_paths()["include"]
    tmp = out.with_suffix(".tmp")
    cmd = [
        "cc",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wno-unused-parameter",
        "-Wno-missing-field-initializers",
        "-fPIC",
        "-shared",
        f"-I{include}",
        str(SOURCE),
        "-o",
        str(tmp),
    ]
    subprocess.run(cmd, check=True)
    tmp.replace(out)  # whole or not at all: a running MCU never loads a half-written file
    return out


if __name__ == "__main__":
    print(build(force="--force" in sys.argv[1:]))
