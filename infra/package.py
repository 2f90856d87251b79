"""``make package``: one zip per function folder (its main.py, requirements.txt and files, the
shared core ``webmeeting/`` inside), and the MCU's zip (``mcu_vm/`` + core + requirements).
Reproducible: fixed timestamps and order, so an unchanged source gives the same zip (terraform
names objects by content hash and redeploys only what changed).

    .venv/bin/python -m infra.package [--out build/package]
"""

from __future__ import annotations

import argparse
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EPOCH = (2020, 1, 1, 0, 0, 0)
SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}
# from the meeting page's npm dependencies only what it serves
KEEP_NODE_FILES = {
    "node_modules/pdfjs-dist/build/pdf.min.mjs",
    "node_modules/pdfjs-dist/build/pdf.worker.min.mjs",
    "node_modules/pdfjs-dist/LICENSE",
}
# the MCU's native part is built on the VM from mcu_vm/_fastfwd.c (startup script), never shipped
MCU_REQUIREMENTS = [
    "aiohttp==3.14.5",
    "aioice==0.13.0",
    "aiortc==1.16.0",
    "av==18.1.0",
    "cryptography==50.0.2",
    "PyJWT==2.15.1",
    "google-cloud-storage==3.17.1",
    "pydantic==2.14.4",
    "email-validator==2.4.0",  # the portal's models (heartbeats, events) validate addresses
]


def _files(base: Path) -> Iterator[Path]:
    for path in sorted(base.rglob("*")):
        if path.is_file() and not (set(path.relative_to(base).parts) & SKIP_DIRS) and path.suffix not in (".pyc", ".so", ".tmp"):
            yield path


def _add(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _core(zf: zipfile.ZipFile) -> None:
    for path in _files(ROOT / "webmeeting"):
        _add(zf, str(path.relative_to(ROOT)), path.read_bytes())


def function_zip(folder: Path, out: Path) -> Path:
    target = out / f"{folder.name}.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for path in _files(folder):
            rel = path.relative_to(folder).as_posix()
            if rel.startswith("node_modules/") and rel not in KEEP_NODE_FILES:
                continue
            if rel in ("package.json", "package-lock.json"):
                continue
            _add(zf, rel, path.read_bytes())
        _core(zf)
    return target


def mcu_zip(out: Path) -> Path:
    target = out / "mcu_vm.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for path in _files(ROOT / "mcu_vm"):
            _add(zf, str(path.relative_to(ROOT)), path.read_bytes())
        _core(zf)
        _add(zf, "requirements.txt", ("\n".join(MCU_REQUIREMENTS) + "\n").encode())
    return target


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    zips = [function_zip(f.parent, out) for f in sorted((ROOT / "functions").glob("*/main.py"))]
    return [*zips, mcu_zip(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "package")
    args = parser.parse_args()
    for z in build(args.out):
        print(f"{z.relative_to(ROOT) if z.is_relative_to(ROOT) else z}  {z.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
