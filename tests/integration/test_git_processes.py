"""A pass's Git work costs a constant number of processes, however many streams it commits.

A stand-in ``git`` on PATH logs each invocation and runs the real one; the counts of a pass that
commits few streams and one that commits many must be equal (counts, never times).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.images import Seeder

from .test_reconcile import docker_tag, stream_file

SCRIPT = Path(sys.executable).parent / "streamlock"

COUNTING_GIT = """#!/bin/sh
echo "$1" >> "$GIT_CALLS"
exec "$REAL_GIT" "$@"
"""


@pytest.fixture
def counting_git(tmp_path: Path) -> dict[str, str]:
    """Environment under which every git process appends its subcommand to ``GIT_CALLS``."""
    real = shutil.which("git")
    assert real is not None
    bin_dir = tmp_path / "counting-bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(COUNTING_GIT)
    (bin_dir / "git").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_GIT": real}


def git_calls(
    config_repo, seeder: Seeder, repo_name: str, env: dict[str, str], streams: int, *args: str
) -> list[str]:
    """The git subcommands one ``streamlock reconcile`` of ``streams`` new streams runs."""
    ref = seeder.ref(repo_name, "1")
    files = {
        f"streams/shop/app{n}.yaml": stream_file(f"app{n}", docker_tag("test", ref))
        for n in range(streams)
    }
    repo: ConfigRepo = config_repo(files, name=f"repo{streams}")
    log = repo.work.parent / "git-calls.log"
    before = repo.commit_count()
    done = subprocess.run(
        [str(SCRIPT), "reconcile", "--repo", str(repo.work), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "GIT_CALLS": str(log)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert int(repo.git("rev-list", "--count", "HEAD")) == before + streams
    return sorted(log.read_text().split())


@pytest.mark.parametrize("push", [False, True], ids=["no-push", "push"])
def test_git_processes_of_a_pass_do_not_grow_with_its_commits(
    config_repo, seeder: Seeder, repo_name: str, counting_git: dict[str, str], push: bool
) -> None:
    """A pass committing eight streams runs exactly the git processes one committing two does."""
    seeder.push_image(repo_name, "1", salt="one")
    args = () if push else ("--no-push",)

    few = git_calls(config_repo, seeder, repo_name, counting_git, 2, *args)
    many = git_calls(config_repo, seeder, repo_name, counting_git, 8, *args)

    assert many == few
    assert few.count("fast-import") == 1 and few.count("update-ref") == 1
