"""What a pass reads: history only when a tag needs its base, locks once per content."""

from __future__ import annotations

import gc
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.images import Seeder

from .test_consumers_pass import stream_file

INDEX = Path(".git/streamlock/trailer-index.json")


def _reconcile(work: Path, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["reconcile", "--repo", str(work), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _pinned(config_repo, seeder: Seeder, repo_name: str) -> ConfigRepo:
    seeder.push_image(repo_name, "1.0", salt="one")
    repo = config_repo({"streams/shop/app.yaml": stream_file(seeder.ref(repo_name, "1.0"))})
    _reconcile(repo.work)
    return repo


def test_a_pass_with_nothing_new_reads_no_history(config_repo, seeder, repo_name, tmp_path):
    """In a fresh clone, a pass whose due tags serve their pins never reads the trailers."""
    repo = _pinned(config_repo, seeder, repo_name)
    clone = repo.clone(tmp_path / "fresh")
    _reconcile(clone, "--no-push")
    assert (clone / ".git" / "streamlock").is_dir()
    assert not (clone / INDEX).exists()


def test_a_revert_is_kept_from_a_fresh_clone(config_repo, seeder, repo_name, tmp_path):
    """The base a revert needs is read on demand: a fresh clone still keeps the revert."""
    repo = _pinned(config_repo, seeder, repo_name)
    first = repo.read_remote("locks/shop/app.lock.yaml")
    seeder.push_image(repo_name, "1.0", salt="two")
    _reconcile(repo.work)
    repo.git("revert", "--no-edit", "HEAD")
    repo.git("push", "--quiet", "origin", "HEAD:main")
    clone = repo.clone(tmp_path / "fresh")
    out = _reconcile(clone, "--no-push", "-A", "-o", "json")
    assert "RevertRespected" in out
    assert (clone / "locks/shop/app.lock.yaml").read_text() == first
    assert (clone / INDEX).exists()


def test_a_pass_hands_what_it_built_back_to_the_collector(config_repo, seeder, repo_name):
    """After a pass the cyclic collector runs again and nothing the pass built stays frozen."""
    repo = _pinned(config_repo, seeder, repo_name)
    _reconcile(repo.work)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
