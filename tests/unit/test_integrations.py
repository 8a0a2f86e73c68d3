"""Files other tools read: the pre-commit hook definition."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]


def test_pre_commit_hook_runs_validate_on_stream_files(tmp_path: Path):
    """The hook's entry is the installed CLI's validate, and it fires for stream files only."""
    [hook] = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "streamlock-validate" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    assert files.search("streams/shop/app.yaml") and files.search("streamlock.yaml")
    assert files.search("locks/shop/app.lock.yaml")
    assert not files.search("deploy/shop/app.yaml")
    (tmp_path / "streams" / "shop").mkdir(parents=True)
    (tmp_path / "streams" / "shop" / "app.yaml").write_text("kind: ImageStream\n")
    program, *args = shlex.split(hook["entry"])
    script = Path(sys.executable).parent / program
    result = subprocess.run(
        [str(script), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stdout.startswith("streams/shop/app.yaml:1:1: ")
