"""The access rules and CODEOWNERS rendering are pure: importing them loads no I/O library."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.unit.test_layers import NETWORK_AND_PROCESS, ROOT


@pytest.mark.parametrize("module", ["access.rules", "access.codeowners"])
def test_access_module_loads_no_io_library(module: str) -> None:
    """Importing an access module loads no HTTP, Git or process library."""
    code = (
        f"import sys, reconciler.{module}\n"
        f"print(' '.join(sorted(m for m in {sorted(NETWORK_AND_PROCESS)!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
