"""kill -9 at random moments: the daemon's workdir heals itself and the remote converges."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonProcess, wait_for
from tests.fixtures.gitremote import git

from .test_daemon import FAST, LOCK, pinned
from .test_reconcile import docker_tag, follow_tag, stream_file

MIN_PASSES = 30
KILLS = 30
SEED = int(os.environ.get("STREAMLOCK_KILL_SEED", "20261130"))


def passes_logged(log: Path) -> int:
    """Passes the daemon finished, from its JSON log (counted afterwards, never waited on)."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if '"msg": "pass"' in line)


def person_pushes(repo, rounds: int) -> str:
    """A person's note, pushed as a person would: a git push a killed daemon left running may
    land first, so pull, rebase and push again (bounded)."""
    repo.pull()
    sha = repo.commit({f"notes/{rounds}.txt": f"round {rounds}\n"}, "a note", push=False)
    for _ in range(10):
        repo.git("push", "--quiet", "origin", "HEAD:main", check=False)
        if repo.head() == repo.remote_head():
            return repo.head()
        repo.git("pull", "--quiet", "--rebase", "origin", "main")
        time.sleep(0.1)
    raise AssertionError(f"the person's push of {sha[:12]} did not land in 10 attempts")


@pytest.mark.slow
def test_kill_9_at_random_moments_converges(config_repo, seeder, repo_name, tmp_path):
    """After 30 SIGKILLs at random moments (clone, fetch, commit, push) over 30+ passes, the
    remote ends at the registry's image, each image is committed exactly once, and every commit
    a person pushed meanwhile is still on the branch."""
    rng = random.Random(SEED)
    tags = docker_tag("test", seeder.ref(repo_name, "1.0")) + follow_tag("latest", "test")
    repo = config_repo({"streamlock.yaml": FAST, "streams/shop/app.yaml": stream_file("app", tags)})
    images = [seeder.push_image(repo_name, "1.0", salt="kill-0")]
    people: list[str] = []
    log = tmp_path / "daemon.log"
    workdir = tmp_path / "wd"
    rounds = 0
    while rounds < KILLS or (passes_logged(log) < MIN_PASSES and rounds < 4 * KILLS):
        rounds += 1
        if pinned(repo) == images[-1]:
            images.append(seeder.push_image(repo_name, "1.0", salt=f"kill-{len(images)}"))
        if rng.random() < 0.3:
            people.append(person_pushes(repo, rounds))
        process = DaemonProcess(repo.remote, workdir, poll="200ms", log=log)
        try:
            process.start(wait_healthy=rng.random() < 0.7)
            time.sleep(rng.uniform(0.0, 0.8))
            process.kill()
        finally:
            process.close()
    assert passes_logged(log) >= MIN_PASSES, f"only {passes_logged(log)} passes in {rounds} rounds"
    print(
        f"{rounds} rounds, {passes_logged(log)} passes, {len(images)} images, {len(people)} people"
    )
    final = DaemonProcess(repo.remote, workdir, poll="200ms", log=log)
    try:
        final.start()
        wait_for(lambda: pinned(repo) == images[-1] and pinned(repo, "latest") == images[-1])
        assert final.stop(signal.SIGTERM) == 0
    finally:
        final.close()
    committed = [
        line.split(": ", 1)[1]
        for commit in reversed(repo.log(LOCK))
        for line in commit["message"].splitlines()
        if line.startswith("Streamlock-Image: ")
    ]
    # Each image once for test and once for its follower latest, oldest first.
    assert committed[::2] == images and committed[1::2] == images
    for sha in people:
        git(repo.remote, "merge-base", "--is-ancestor", sha, "main")
    clone = workdir / "repo"
    assert git(clone, "status", "--porcelain") == ""
    assert git(clone, "rev-parse", "HEAD").strip() == repo.remote_head()
