"""What a command imports before it starts: only what it uses (start-up is part of every pass)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert json.loads(done.stdout) == []


def test_trio_stays_importable_after_the_registry_shell() -> None:
    """Hiding trio from httpcore's import does not hide it from anyone else."""
    code = "import sys\nimport reconciler.registry\nprint(sys.modules.get('trio', 0) is not None)\n"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert done.stdout.strip() == "True"


def test_rich_stays_importable_after_the_cli() -> None:
    """Hiding rich from structlog's import does not hide it from anyone else."""
    code = "import sys\nimport reconciler.cli\nprint(sys.modules.get('rich', 0) is not None)\n"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert done.stdout.strip() == "True"
