"""A pass's Git work costs a constant number of processes, however many streams it commits.

A stand-in ``git`` on PATH logs each invocation and runs the real one; the counts of a pass that
commits few streams and one that commits many must be equal (counts, never times).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import registry_factory
from reconciler.daemon import workdir
from reconciler.reconcile import PassOptions, run_pass
from tests.fixtures.gitremote import BRANCH, ConfigRepo
from tests.fixtures.images import Seeder

from .test_reconcile import docker_tag, stream_file

SCRIPT = Path(sys.executable).parent / "streamlock"


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


def _fetches(work: Path, env: dict[str, str], options: PassOptions) -> list[str]:
    """The git subcommands of one pass in ``work`` (nothing to import: stream files only)."""
    log = work.parent / "git-calls.log"
    log.unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**env, "GIT_CALLS": str(log)}.items():
            patch.setenv(key, value)
        asyncio.run(run_pass(work, registry_factory, options))
    return log.read_text().split()


def test_a_daemon_pass_fetches_once(config_repo, counting_git: dict[str, str], tmp_path: Path):
    """After the daemon's workdir sync has fetched, the pass starts at that tip; a pass given
    another tip (or none) fetches for itself."""
    origin: ConfigRepo = config_repo({"streams/shop/app.yaml": stream_file("app", "  []\n")})
    repo = workdir.prepare(str(origin.remote), tmp_path / "daemon", BRANCH)
    tip = workdir.sync(repo, BRANCH)
    synced = PassOptions(synced=(workdir.REMOTE, BRANCH, tip))
    assert _fetches(repo.root, counting_git, synced).count("fetch") == 0
    stale = PassOptions(synced=(workdir.REMOTE, BRANCH, "0" * 40))
    assert _fetches(repo.root, counting_git, stale).count("fetch") == 1
    assert _fetches(repo.root, counting_git, PassOptions()).count("fetch") == 1
