"""What a command imports before it starts: only what it uses (start-up is part of every pass)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Installed in a development environment by other tools, never used by streamlock (rich is
# what structlog would draw tracebacks with); and jsonschema, which only words the problems of
# a file that fails its schema.
UNUSED = ("git", "trio", "rich", "jsonschema")


def test_the_cli_and_registry_shell_import_nothing_they_never_use() -> None:
    """Loading the CLI and the registry shell imports neither GitPython, trio, rich nor
    jsonschema."""
    code = (
        "import json, sys\n"
        "import reconciler.cli, reconciler.registry, reconciler.gitrepo\n"
        f"print(json.dumps(sorted(m for m in {UNUSED!r} if m in sys.modules)))\n"
    )
    assert json.loads(_python(code)) == []


@pytest.mark.parametrize(
    ("module", "hidden"), [("reconciler.registry", "trio"), ("reconciler.cli", "rich")]
)
def test_a_hidden_package_stays_importable_afterwards(module: str, hidden: str) -> None:
    """Hiding trio from httpcore's import, or rich from structlog's, hides it from nobody else."""
    code = f"import sys\nimport {module}\nprint(sys.modules.get({hidden!r}, 0) is not None)\n"
    assert _python(code).strip() == "True"


def _python(code: str) -> str:
    """What a fresh interpreter running ``code`` prints (this checkout's package first)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    ).stdout
