"""The functional core stays pure: its modules never load I/O libraries, even indirectly."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PURE = [
    "planner",
    "trailers",
    "lockfile",
    "manifest",
    "reference",
    "image",
    "inspect",
    "streamedit",
    "status",
    "errors",
    "consumers/source",
    "consumers/slots",
    "consumers/triggers",
    "consumers/setters",
    "consumers/kustomize",
    "consumers/scan",
    "consumers/controller",
    "policy/tags",
    "policy/gates",
    "policy/annotations",
    "consumers/render",
]
IO_MODULES = {
    "httpx",
    "httpcore",
    "git",
    "subprocess",
    "asyncio",
    "socket",
    "anyio",
    "stamina",
    "uvicorn",
    "starlette",
    "urllib.request",
    "shutil",
    "tempfile",
}
# The standard library's tempfile/shutil are loaded by importlib.resources; they do no I/O here.
NETWORK_AND_PROCESS = IO_MODULES - {"shutil", "tempfile"}
ROOT = Path(__file__).resolve().parents[2]


def direct_imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / "reconciler" / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_directly(module):
    """A pure module's own imports name no I/O library."""
    bad = {
        name
        for name in direct_imports(module)
        if name.split(".")[0] in IO_MODULES or name in IO_MODULES
    }
    assert not bad, f"reconciler/{module}.py imports {sorted(bad)}"


@pytest.mark.parametrize("module", ["planner", "inspect", "streamedit", "consumers.scan"])
def test_pure_module_loads_no_io_library_transitively(module):
    """Importing the planner (or the edit/view modules) loads no HTTP, Git or process library."""
    code = (
        f"import sys, reconciler.{module}\n"
        f"print(' '.join(sorted(m for m in {sorted(NETWORK_AND_PROCESS)!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("module", ["cli_streams", "cli_repo", "cli_access", "console"])
def test_command_modules_do_not_import_cli(module: str) -> None:
    """Only cli.py imports the command modules; they take what they share from console.py."""
    path = Path(__file__).resolve().parents[2] / "reconciler" / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "reconciler.cli" not in imported
