"""The web view's model and pages stay pure: they render data and never reach for I/O."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO = ("httpx", "git", "subprocess", "asyncio", "socket", "starlette", "uvicorn", "graphviz")


@pytest.mark.parametrize("module", ["reconciler.web.model", "reconciler.web.pages"])
def test_web_module_loads_no_io_library(module):
    """Importing the web model or the page renderer loads no network, process or Git module."""
    code = f"import sys\nimport {module}\nprint(sorted(m for m in {IO!r} if m in sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
