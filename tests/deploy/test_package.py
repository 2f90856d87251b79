"""`make package`: every function zip (and the MCU's) carries the shared core and imports in a
clean virtualenv built from that zip's own requirements.txt, nothing else (the MCU's after
building its native part from the source it carries, as its VM does)."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from infra.package import build

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("package")
    return {z.stem: z for z in build(out)}


def test_every_function_folder_is_packaged_with_the_core(packages: dict[str, Path]) -> None:
    assert set(packages) == {*FUNCTIONS, "mcu_vm"}
    for name in FUNCTIONS:
        names = set(zipfile.ZipFile(packages[name]).namelist())
        assert {"main.py", "requirements.txt", "webmeeting/__init__.py", "webmeeting/domain/api.py"} <= names
        assert not any("__pycache__" in n for n in names)


def test_packaging_is_reproducible(packages: dict[str, Path], tmp_path: Path) -> None:
    again = {z.stem: z for z in build(tmp_path)}
    assert all(again[k].read_bytes() == packages[k].read_bytes() for k in packages)


@pytest.mark.parametrize("name", [*FUNCTIONS, "mcu_vm"])
def test_the_zip_imports_in_a_clean_venv_from_its_own_requirements(packages: dict[str, Path], name: str, tmp_path: Path) -> None:
    app = tmp_path / "app"
    zipfile.ZipFile(packages[name]).extractall(app)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(app / "requirements.txt")],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    if name == "mcu_vm":  # as the VM's startup script does: its native path built from the source it carries
        names = zipfile.ZipFile(packages[name]).namelist()
        assert "mcu_vm/_fastfwd.c" in names and not any(n.endswith(".so") for n in names)
        native = subprocess.run(
            [str(py), "-m", "mcu_vm.native"], cwd=app, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
        )
        assert native.returncode == 0, native.stderr[-3000:]
    module = "main" if name != "mcu_vm" else "mcu_vm.worker, mcu_vm.__main__"
    check = subprocess.run(
        [str(py), "-c", f"import {module}"], cwd=app, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert sys.prefix not in check.stdout
