"""What a daemon pass resolves: only what is due, only its shard; replicas share one remote."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.daemon.state import Shard
from tests.fixtures.daemon import DaemonProcess, wait_for
from tests.fixtures.gitremote import ConfigRepo

from .test_daemon import FAST, pinned
from .test_daemon_hooks import PUSH, SECRET, SLOW, github
from .test_reconcile import docker_tag, stream_file


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """``replicas(repo, name, *args)``: a daemon with its own workdir and extra arguments."""
    started: list[DaemonProcess] = []

    def factory(repo: ConfigRepo, name: str, *args: str) -> DaemonProcess:
        env = {"STREAMLOCK_GIT_WEBHOOK_SECRET": SECRET}
        process = DaemonProcess(repo.remote, tmp_path / name, args=args, env=env)
        started.append(process)
        return process.start()

    yield factory
    for process in started:
        process.close()


def requests(process: DaemonProcess) -> float:
    return process.metric("streamlock_registry_requests_total")


def test_a_pass_resolves_only_what_is_due(config_repo, replicas, seeder, repo_name):
    """With a 15 min interval, a pass started by a Git hook asks the registry nothing."""
    first = seeder.push_image(repo_name, "1.0", salt="due")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0"))
    repo = config_repo({"streamlock.yaml": SLOW, "streams/shop/app.yaml": stream_file("app", tags)})
    process = replicas(repo, "wd")
    wait_for(lambda: pinned(repo) == first and not process.status()["reconciling"])
    before = requests(process)
    assert before > 0
    assert process.post("/hooks/git", PUSH, github(PUSH)).status_code == 202
    wait_for(lambda: process.passes() == 2 and not process.status()["reconciling"])
    assert requests(process) == before
    [item] = process.status()["tags"]
    assert item["notPinned"] == {"reason": "NotDue", "image": None}


def test_scheduled_tag_is_rechecked_at_its_due_time(config_repo, replicas, seeder, repo_name):
    """A scheduled tag is re-imported when its interval (1 s) passes, with a 60 s git poll."""
    first = seeder.push_image(repo_name, "1.0", salt="tick-1")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0"))
    repo = config_repo({"streamlock.yaml": FAST, "streams/shop/app.yaml": stream_file("app", tags)})
    process = replicas(repo, "wd")
    wait_for(lambda: pinned(repo) == first)
    second = seeder.push_image(repo_name, "1.0", salt="tick-2")
    wait_for(lambda: pinned(repo) == second)
    due = process.tag("shop/app:test")["nextDue"]
    assert due is not None


def namespaces_in(shard: Shard, count: int) -> list[str]:
    return [n for n in (f"team{i}" for i in range(100)) if shard.owns(n)][:count]


def test_shards_split_namespaces_between_replicas(config_repo, replicas, seeder, repo_name):
    """Two replicas with --shard 0/2 and 1/2 each pin their own namespaces' tags, and each
    /status lists only its own."""
    [a] = namespaces_in(Shard(0, 2), 1)
    [b] = namespaces_in(Shard(1, 2), 1)
    digests = {ns: seeder.push_image(repo_name, ns, salt=ns) for ns in (a, b)}
    files = {
        f"streams/{ns}/app.yaml": stream_file("app", docker_tag("t", seeder.ref(repo_name, ns)), ns)
        for ns in (a, b)
    }
    repo = config_repo({"streamlock.yaml": SLOW, **files})
    one = replicas(repo, "wd0", "--shard", "0/2")
    wait_for(lambda: pinned(repo, "t", f"locks/{a}/app.lock.yaml") == digests[a])
    wait_for(lambda: not one.status()["reconciling"] and one.passes() >= 1)
    assert repo.read_remote(f"locks/{b}/app.lock.yaml") is None
    two = replicas(repo, "wd1", "--shard", "1/2")
    wait_for(lambda: pinned(repo, "t", f"locks/{b}/app.lock.yaml") == digests[b])
    # /status is per replica: each lists its own namespace's tags (polled, as a pass that the
    # other replica's push starts may be running)
    wait_for(lambda: [t["namespace"] for t in one.status()["tags"]] == [a])
    wait_for(lambda: [t["namespace"] for t in two.status()["tags"]] == [b])
    assert b not in {t["namespace"] for t in one.status()["tags"]}


def test_overlapping_replicas_lose_nothing(config_repo, replicas, seeder, repo_name):
    """Two unsharded replicas on one remote: every image is committed once, no commit lost."""
    first = seeder.push_image(repo_name, "1.0", salt="overlap-0")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0"))
    repo = config_repo({"streamlock.yaml": FAST, "streams/shop/app.yaml": stream_file("app", tags)})
    one, two = replicas(repo, "wd0"), replicas(repo, "wd1")
    wait_for(lambda: pinned(repo) == first)
    pushed = [first]
    for i in range(1, 4):
        pushed.append(seeder.push_image(repo_name, "1.0", salt=f"overlap-{i}"))
        wait_for(lambda: pinned(repo) == pushed[-1])
    images = [
        line.split(": ", 1)[1]
        for commit in repo.log("locks/shop/app.lock.yaml")
        for line in commit["message"].splitlines()
        if line.startswith("Streamlock-Image: ")
    ]
    assert sorted(images) == sorted(pushed)
    assert json.dumps(one.status()) and json.dumps(two.status())
