"""Webhooks of ``streamlock run``: the real registry's notifications, GitHub and GitLab pushes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonProcess, wait_for
from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.images import Seeder
from tests.fixtures.registry_server import RegistryServer, free_port, notification_endpoint

from .test_daemon import pinned
from .test_reconcile import docker_tag, follow_tag, stream_file

TOKEN = "registry-hook-token-7f3a"
SECRET = "git-hook-secret-91c2"
SLOW = "apiVersion: streamlock/v1\nkind: Config\nimportInterval: 15m\n"


@pytest.fixture(scope="module")
def notifying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, int]]:
    """A registry that notifies ``127.0.0.1:<port>/hooks/registry`` (the daemon listens there)."""
    port = free_port()
    endpoint = notification_endpoint(f"http://127.0.0.1:{port}/hooks/registry", token=TOKEN)
    root = tmp_path_factory.mktemp("registry-notifying")
    with RegistryServer(root, notifications=[endpoint]) as server:
        yield server, port


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """``hooked(repo, port=None)``: a daemon with both hook secrets, polling once a minute."""
    started: list[DaemonProcess] = []

    def factory(repo: ConfigRepo, port: int | None = None) -> DaemonProcess:
        env = {"STREAMLOCK_REGISTRY_TOKEN": TOKEN, "STREAMLOCK_GIT_WEBHOOK_SECRET": SECRET}
        process = DaemonProcess(repo.remote, tmp_path / "wd", port=port, poll="60s", env=env)
        started.append(process)
        return process.start()

    yield factory
    for process in started:
        process.close()


def hook_count(process: DaemonProcess, outcome: str) -> float:
    return process.metric("streamlock_hooks_total", kind="registry", outcome=outcome)


def settled(process: DaemonProcess, passes: int) -> bool:
    """``passes`` passes done and none running."""
    doc = process.status()
    return process.passes() == passes and not doc["reconciling"]


# --- registry notifications ------------------------------------------------------------------
def test_registry_notification_lands_a_bump_within_two_seconds(
    notifying, make_seeder, config_repo, hooked, repo_name
):
    """A push to the real registry notifies the daemon; the bump (and its follower) reaches
    the remote within 2 s, with the git poll at 60 s and the import interval at 15 min."""
    server, port = notifying
    seeder = make_seeder(server)
    first = seeder.push_image(repo_name, "1.0", salt="n1")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0")) + follow_tag("latest", "test")
    repo = config_repo({"streamlock.yaml": SLOW, "streams/shop/app.yaml": stream_file("app", tags)})
    hooked(repo, port=port)
    wait_for(lambda: pinned(repo) == first)
    second = seeder.push_image(repo_name, "1.0", salt="n2")
    pushed = time.monotonic()
    wait_for(lambda: pinned(repo) == second, timeout=30, interval=0.02)
    delay = time.monotonic() - pushed
    assert pinned(repo, "latest") == second
    assert delay < 2.0, f"bump landed {delay:.2f} s after the push"


def test_registry_notification_of_another_tag_makes_no_pass(
    notifying, make_seeder, config_repo, hooked, repo_name
):
    """A push of a tag no stream watches makes no pass."""
    server, port = notifying
    seeder = make_seeder(server)
    first = seeder.push_image(repo_name, "1.0", salt="o1")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0"))
    repo = config_repo({"streamlock.yaml": SLOW, "streams/shop/app.yaml": stream_file("app", tags)})
    process = hooked(repo, port=port)
    wait_for(lambda: pinned(repo) == first)
    # The registry's notification of the first push may still start a pass: let it land
    # (it matches nothing if it comes before the first pass has read the streams).
    wait_for(lambda: hook_count(process, "matched") + hook_count(process, "unmatched") >= 1)
    passes = wait_for(lambda: not process.status()["reconciling"] and process.passes())
    unmatched = hook_count(process, "unmatched")
    seeder.push_image(repo_name, "other", salt="o2")
    wait_for(lambda: hook_count(process, "unmatched") > unmatched)
    assert process.passes() == passes and not process.status()["reconciling"]


def test_registry_hook_without_the_token_is_refused(config_repo, hooked, seeder, repo_name):
    """A registry notification with a wrong or missing bearer token gets 401 and no pass."""
    first = seeder.push_image(repo_name, "1.0", salt="t1")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0"))
    repo = config_repo({"streamlock.yaml": SLOW, "streams/shop/app.yaml": stream_file("app", tags)})
    process = hooked(repo)
    wait_for(lambda: pinned(repo) == first and settled(process, 1))
    body = distribution_envelope(repo_name, "1.0")
    headers = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}
    assert process.post("/hooks/registry", body, headers).status_code == 401
    bad = {**headers, "Authorization": "Bearer wrong"}
    assert process.post("/hooks/registry", body, bad).status_code == 401
    good = {**headers, "Authorization": f"Bearer {TOKEN}"}
    answer = process.post("/hooks/registry", body, good)
    assert answer.status_code == 202 and answer.json()["tags"] == ["shop/app:test"]
    wait_for(lambda: settled(process, 2))


def distribution_envelope(repository: str, tag: str) -> bytes:
    event = {
        "id": str(uuid.uuid4()),
        "action": "push",
        "target": {"repository": repository, "tag": tag, "digest": "sha256:" + "a" * 64},
        "request": {"host": "registry.example:5000", "method": "PUT"},
    }
    return json.dumps({"events": [event]}).encode()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            lambda repo, tag: {"push_data": {"tag": tag}, "repository": {"repo_name": repo}},
            id="docker-hub",
        ),
        pytest.param(
            lambda repo, tag: {
                "repository": repo,
                "docker_url": f"quay.io/{repo}",
                "updated_tags": [tag],
            },
            id="quay",
        ),
        pytest.param(
            lambda repo, tag: {
                "type": "PUSH_ARTIFACT",
                "event_data": {"resources": [{"resource_url": f"harbor.example/{repo}:{tag}"}]},
            },
            id="harbor",
        ),
    ],
)
def test_hosted_registry_payloads_start_a_pass(
    payload, config_repo, hooked, seeder, repo_name
):  # fmt: skip
    """Docker Hub, Quay and Harbor push payloads make the watched tag re-checked and bumped."""
    first = seeder.push_image(repo_name, "1.0", salt="h1")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0"))
    repo = config_repo({"streamlock.yaml": SLOW, "streams/shop/app.yaml": stream_file("app", tags)})
    process = hooked(repo)
    wait_for(lambda: pinned(repo) == first and settled(process, 1))
    second = seeder.push_image(repo_name, "1.0", salt="h2")
    body = json.dumps(payload(repo_name, "1.0")).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    assert process.post("/hooks/registry", body, headers).status_code == 202
    wait_for(lambda: pinned(repo) == second)


# --- git hooks ---------------------------------------------------------------------------------
def github(body: bytes, delivery: str | None = None, secret: str = SECRET) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
    }


PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


@pytest.fixture
def idle(config_repo, hooked, seeder, repo_name):
    """A daemon that has done its first pass; the next pass can only come from a hook."""
    first = seeder.push_image(repo_name, "1.0", salt="g1")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0"))
    repo = config_repo({"streamlock.yaml": SLOW, "streams/shop/app.yaml": stream_file("app", tags)})
    process = hooked(repo)
    wait_for(lambda: pinned(repo) == first and settled(process, 1))
    return repo, process


def add_stream(repo: ConfigRepo, seeder: Seeder, repo_name: str) -> str:
    """A person adds a stream on the remote; returns the digest its lock must pin."""
    repo.pull()
    digest = seeder.push_image(repo_name, "2.0", salt="new-stream")
    tags = docker_tag("web", seeder.ref(repo_name, "2.0"), scheduled=False)
    repo.commit({"streams/shop/web.yaml": stream_file("web", tags)}, "shop/web: new stream")
    return digest


def test_github_push_hook_starts_a_pass(idle, seeder, repo_name):
    """A GitHub push event with a valid X-Hub-Signature-256 starts a fetch and a pass."""
    repo, process = idle
    digest = add_stream(repo, seeder, repo_name)
    assert process.post("/hooks/git", PUSH, github(PUSH)).status_code == 202
    wait_for(lambda: pinned(repo, "web", "locks/shop/web.lock.yaml") == digest)


def test_gitlab_push_hook_starts_a_pass(idle, seeder, repo_name):
    """A GitLab push hook with the right X-Gitlab-Token starts a pass."""
    repo, process = idle
    digest = add_stream(repo, seeder, repo_name)
    headers = {
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": SECRET,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
    }
    assert process.post("/hooks/git", PUSH, headers).status_code == 202
    wait_for(lambda: pinned(repo, "web", "locks/shop/web.lock.yaml") == digest)


def test_bad_hmac_is_refused_and_starts_nothing(idle):
    """A wrong, missing or other-secret signature gets 401 and makes no pass."""
    _, process = idle
    wrong = github(PUSH, secret="not-the-secret")
    assert process.post("/hooks/git", PUSH, wrong).status_code == 401
    missing = {k: v for k, v in github(PUSH).items() if k != "X-Hub-Signature-256"}
    assert process.post("/hooks/git", PUSH, missing).status_code == 401
    tampered = github(PUSH)
    assert process.post("/hooks/git", PUSH + b" ", tampered).status_code == 401
    gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}
    assert process.post("/hooks/git", PUSH, gitlab).status_code == 401
    assert process.post("/hooks/git", PUSH, github(PUSH)).status_code == 202
    wait_for(lambda: settled(process, 2))


def test_replayed_delivery_is_ignored(idle):
    """A delivery id seen before is answered but starts no pass."""
    _, process = idle
    delivery = str(uuid.uuid4())
    assert process.post("/hooks/git", PUSH, github(PUSH, delivery)).status_code == 202
    wait_for(lambda: settled(process, 2))
    again = process.post("/hooks/git", PUSH, github(PUSH, delivery))
    assert again.status_code == 202 and "already seen" in again.json()["ignored"]
    assert process.post("/hooks/git", PUSH, github(PUSH)).status_code == 202
    wait_for(lambda: settled(process, 3))


def test_oversized_body_is_refused(idle):
    """A body over the cap gets 413, signed or not."""
    _, process = idle
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    assert process.post("/hooks/git", body, github(body)).status_code == 413
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    assert process.post("/hooks/registry", body, headers).status_code == 413


def test_push_to_another_branch_is_ignored(idle):
    """A push event for another branch starts no pass."""
    _, process = idle
    other = json.dumps({"ref": "refs/heads/feature"}).encode()
    answer = process.post("/hooks/git", other, github(other))
    assert answer.status_code == 202 and "feature" in answer.json()["ignored"]
    assert process.passes() == 1


def test_a_burst_of_hooks_makes_at_most_two_passes(idle):
    """Twenty push hooks at once start one pass, and at most one more after it: passes
    coalesce and never overlap."""
    _, process = idle
    for _ in range(20):
        assert process.post("/hooks/git", PUSH, github(PUSH)).status_code == 202
    wait_for(lambda: not process.status()["reconciling"] and process.passes() >= 2)
    assert process.passes() <= 3
    assert process.metric("streamlock_pass_total", result="error") == 0


def test_secrets_never_reach_the_log(idle):
    """Neither the registry token nor the Git secret appears in the daemon's log."""
    _, process = idle
    process.post("/hooks/git", PUSH, github(PUSH))
    process.post("/hooks/git", PUSH, {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET})
    process.post("/hooks/registry", b"{}", {"Authorization": f"Bearer {TOKEN}"})
    wait_for(lambda: not process.status()["reconciling"] and process.passes() >= 2)
    assert process.stop() == 0
    text = process.log.read_text()
    assert TOKEN not in text and SECRET not in text
