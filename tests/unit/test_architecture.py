"""House rules that code review would otherwise have to catch."""

import ast
import re
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


# --- the boundaries the house is built on -----------------------------------------------------------

DEPLOYED = ("webmeeting", "functions", "mcu_vm", "converter_job")  # what runs in production
SETTINGS_MODULES = {"webmeeting/settings.py", "mcu_vm/settings.py"}
# deliberate lazy imports of heavy optional dependencies (not cycles): the file, the module
LAZY_IMPORTS = {
    ("webmeeting/mail.py", "webmeeting.chart"),  # Pillow: only the mail sender draws charts
    ("mcu_vm/recording.py", "webmeeting.adapters"),  # its storage  # google-cloud-storage: only the uploader
}


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "node_modules" not in p.parts)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported (not inside functions or TYPE_CHECKING)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else []:
            if isinstance(sub, ast.Import):
                names |= {a.name for a in sub.names}
            elif isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
                names.add(sub.module)
                names |= {f"{sub.module}.{a.name}" for a in sub.names}
    return names


def _function_local_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    found += [(sub.lineno, a.name) for a in sub.names]
                elif isinstance(sub, ast.ImportFrom) and sub.module:
                    found.append((sub.lineno, sub.module))
    return found


def test_no_import_cycle() -> None:
    modules = {_module_name(p): p for p in _sources("webmeeting", "mcu_vm", "converter_job")}
    graph = {name: {m for m in _top_level_imports(p) if m in modules and m != name} for name, p in modules.items()}
    assert len(graph) > 50, "the scan found too few modules"
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_function_local_import_of_our_own_modules() -> None:
    """A function-local import of a project module hides a cycle or a layering problem."""
    offenders = [
        f"{_rel(p)}:{line}: {name}"
        for p in _sources(*DEPLOYED)
        for line, name in _function_local_imports(p)
        if name.split(".")[0] in {"webmeeting", "mcu_vm", "converter_job", "functions"} and (_rel(p), name) not in LAZY_IMPORTS
    ]
    assert not offenders


def test_only_adapters_import_a_google_sdk() -> None:
    offenders = []
    for p in _sources(*DEPLOYED):
        if _rel(p).startswith("webmeeting/adapters/"):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{_rel(p)}: {n}" for n in names if n.split(".")[0] in ("google", "grpc")]
    # the MCU's uploader catches one Storage precondition error by type (its adapter does the upload)
    assert offenders == ["mcu_vm/recording.py: google.api_core.exceptions"], offenders


def test_the_environment_is_read_only_by_the_settings_modules() -> None:
    pattern = re.compile(r"\bos\.environ\b|\bgetenv\(|\bos\.getenv\b|^from os import .*environ")
    offenders = [
        f"{_rel(p)}:{n}: {line.strip()}"
        for p in _sources(*DEPLOYED)
        if _rel(p) not in SETTINGS_MODULES
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders


def _read_variables(path: Path) -> set[str]:
    """The variable names a settings module reads (string constants passed to env lookups)."""
    text = path.read_text()
    found = set(re.findall(r'(?:env\.get|_required|_req|_choice)\((?:env, )?"([A-Z][A-Z0-9_]+)"', text))
    return found | set(re.findall(r'env\.get\("([A-Z][A-Z0-9_]+)"', text))


def _documented(text: str) -> set[str]:
    """Variable names in the configuration tables: `A_B`, and the shorthand `_C` (= A_C)."""
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.replace("\\|", "/").split("|")[1]
        prefix = ""
        for token in re.findall(r"`([A-Z_][A-Z0-9_<>]*)`", first):
            if token.startswith("_") and prefix:
                names.add(prefix + token)
            else:
                names.add(token)
                prefix = token.rsplit("_", 1)[0]
    return names


def test_the_readme_tables_list_every_setting_and_only_settings() -> None:
    read = _read_variables(ROOT / "webmeeting" / "settings.py") | _read_variables(ROOT / "mcu_vm" / "settings.py")
    assert {"WEBMEETING_PUBLIC_BASE_URL", "WEBMEETING_SMTP_HOST", "MCU_ID"} <= read, "the scan is broken"
    documented = _documented((ROOT / "README.md").read_text()) | _documented((ROOT / "mcu_vm" / "README.md").read_text())
    by_google = {"FIRESTORE_EMULATOR_HOST"}  # read by Google's client library itself
    patterns = {"WEBMEETING_RETENTION_<RULE>_S"}  # read by prefix
    assert read - documented == set(), "settings missing from the README configuration tables"
    assert documented - read - by_google - patterns == set(), "documented but read by no settings object"
