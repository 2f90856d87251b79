"""House rules that code review would otherwise have to catch."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK_PREFIXES = ("google", "flask", "functions_framework", "requests", "aiohttp", "aiortc", "av", "dns", "geoip2")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_domain_imports_no_sdk() -> None:
    offenders = {
        f"{p.relative_to(ROOT)}: {name}"
        for p in (ROOT / "webmeeting" / "domain").glob("*.py")
        for name in _imports(p)
        if name.split(".")[0] in SDK_PREFIXES
    }
    assert not offenders


def test_every_function_folder_is_an_artifact() -> None:
    folders = [p for p in (ROOT / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    assert folders
    for folder in folders:
        assert (folder / "main.py").exists() and (folder / "requirements.txt").exists(), folder
        assert f"def {folder.name}(" in (folder / "main.py").read_text(), f"{folder.name} must define its target"


def test_nothing_sets_a_cookie() -> None:
    for folder in ("functions", "webmeeting", "infra"):
        for p in (ROOT / folder).rglob("*.*"):
            if p.suffix in {".py", ".html", ".js"}:
                text = p.read_text()
                assert "set_cookie" not in text and "document.cookie" not in text, p
