"""``streamlock run`` as a real process against the real registry and a bare Git remote."""

from __future__ import annotations

import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.lockfile import loads
from tests.fixtures.daemon import DaemonProcess, wait_for
from tests.fixtures.gitremote import ConfigRepo, git
from tests.fixtures.images import Seeder

from .test_reconcile import docker_tag, follow_tag, stream_file

LOCK = "locks/shop/app.lock.yaml"
FAST = "apiVersion: streamlock/v1\nkind: Config\nimportInterval: 1s\n"
RESULTS = ("success", "failed", "error")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """``daemon(repo, **kwargs)``: a started daemon on a free port, killed after the test."""
    started: list[DaemonProcess] = []

    def factory(repo: ConfigRepo, workdir: str = "wd", **kwargs) -> DaemonProcess:
        process = DaemonProcess(repo.remote, tmp_path / workdir, **kwargs)
        started.append(process)
        return process.start()

    yield factory
    for process in started:
        process.close()


def pinned(repo: ConfigRepo, tag: str = "test", path: str = LOCK) -> str | None:
    text = repo.read_remote(path)
    if text is None:
        return None
    entry = loads(text.encode()).tags.get(tag)
    return entry.image if entry else None


@pytest.fixture
def app(config_repo, seeder: Seeder, repo_name: str):
    """shop/app: ``test`` (scheduled, 1 s interval) and ``latest`` following it; 1.0 pushed."""
    first = seeder.push_image(repo_name, "1.0", salt="one")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0")) + follow_tag("latest", "test")
    repo = config_repo({"streamlock.yaml": FAST, "streams/shop/app.yaml": stream_file("app", tags)})
    return repo, first


def test_first_start_clones_pins_and_pushes(app, daemon):
    """A first start clones the remote into the workdir and pushes the pinned lock."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    assert pinned(repo, "latest") == first
    assert (process.workdir / "repo" / ".git").is_dir()


def test_readyz_after_first_pass_and_verbose(app, daemon):
    """/readyz answers 200 once the clone and config load are done; ?verbose lists checks."""
    repo, _ = app
    process = daemon(repo)
    wait_for(lambda: process.get("/readyz").status_code == 200)
    verbose = process.get("/readyz?verbose").text
    assert "[+]clone ok" in verbose and "[+]config ok" in verbose
    assert process.get("/healthz").text == "ok\n" and process.get("/livez").status_code == 200


def test_sigterm_exits_zero_and_leaves_workdir_at_the_remote(app, daemon):
    """SIGTERM: exit 0; the clone is clean and at the remote's tip."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    assert process.stop(signal.SIGTERM) == 0
    clone = process.workdir / "repo"
    assert git(clone, "status", "--porcelain") == ""
    assert git(clone, "rev-parse", "HEAD").strip() == repo.remote_head()


def test_sigint_exits_zero(app, daemon):
    """SIGINT stops the daemon as SIGTERM does."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    assert process.stop(signal.SIGINT) == 0


def test_restart_reuses_the_clone_and_bumps(app, daemon, seeder, repo_name):
    """A restart reuses the workdir's clone and bumps what the registry moved meanwhile."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    assert process.stop() == 0
    marker = process.workdir / "repo" / ".git" / "kept-across-restarts"
    marker.write_text("x")
    second = seeder.push_image(repo_name, "1.0", salt="two")
    daemon(repo)
    wait_for(lambda: pinned(repo) == second)
    assert marker.exists()


def test_start_cleans_what_a_kill_left(app, daemon, seeder, repo_name):
    """Stale locks, a rebase and a merge in progress, untracked files and an unpushed commit of
    its own are cleaned up on start; the daemon then converges."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    assert process.stop() == 0
    clone = process.workdir / "repo"
    dot_git = clone / ".git"
    (dot_git / "index.lock").write_text("")
    (dot_git / "refs" / "heads" / "main.lock").write_text("")
    (dot_git / "rebase-merge").mkdir()
    (dot_git / "rebase-merge" / "head-name").write_text("refs/heads/main\n")
    (dot_git / "MERGE_HEAD").write_text(repo.remote_head() + "\n")
    (clone / "stray.txt").write_text("left behind")
    (clone / LOCK).write_text("torn")
    second = seeder.push_image(repo_name, "1.0", salt="three")
    daemon(repo)
    wait_for(lambda: pinned(repo) == second)
    assert not (dot_git / "index.lock").exists() and not (dot_git / "rebase-merge").exists()
    assert not (dot_git / "MERGE_HEAD").exists() and not (clone / "stray.txt").exists()


def test_unpushed_commit_is_dropped_and_recomputed(app, daemon, seeder, repo_name):
    """An own commit that never reached the remote is dropped; the remote gets one bump."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    assert process.stop() == 0
    clone = process.workdir / "repo"
    lock = clone / LOCK
    lock.write_text(lock.read_text().replace(first, "sha256:" + "0" * 64))
    git(clone, "commit", "-qam", "shop/app: test stale")
    before = repo.commit_count()
    second = seeder.push_image(repo_name, "1.0", salt="four")
    daemon(repo)
    wait_for(lambda: pinned(repo) == second)
    assert repo.commit_count() == before + 1
    assert "0" * 64 not in (repo.read_remote(LOCK) or "")


def test_status_shows_tags_and_revision(app, daemon):
    """/status: per tag conditions, current image, next due time, observedRevision."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    item = wait_for(lambda: process.tag("shop/app:test"))
    assert item["image"] == first and item["state"] == "ready"
    assert {"type": "Ready", "status": "True"}.items() <= item["conditions"][0].items()
    assert item["nextDue"] is not None and item["lastImport"] is not None
    doc = wait_for(lambda: (d := process.status())["observedRevision"] == repo.remote_head() and d)
    assert doc["ready"] is True


def test_status_shows_a_failing_tag_with_its_error(config_repo, daemon, seeder, repo_name):
    """A tag whose image does not exist is Stalled with its error; the others are reconciled
    and the daemon stays ready."""
    good = seeder.push_image(repo_name, "1.0", salt="good")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0")) + docker_tag(
        "gone", seeder.ref(repo_name, "no-such-tag")
    )
    repo = config_repo({"streamlock.yaml": FAST, "streams/shop/app.yaml": stream_file("app", tags)})
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == good)
    item = wait_for(lambda: process.tag("shop/app:gone"))
    assert item["state"] == "stalled"
    assert item["conditions"][0]["status"] == "False"
    assert any(c["type"] == "Stalled" for c in item["conditions"])
    assert item["lastError"].startswith("ManifestUnknown")
    assert process.get("/readyz").status_code == 200


def test_status_shows_a_respected_revert_and_the_waiting_digest(app, daemon, seeder, repo_name):
    """After a person reverts a bump, /status says RevertRespected and names the digest that
    waits; the remote keeps the person's pin."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    second = seeder.push_image(repo_name, "1.0", salt="revert-me")
    wait_for(lambda: pinned(repo) == second)
    repo.pull()
    bump = repo.log(LOCK, n=1)[0]["sha"]
    repo.git("revert", "--no-edit", bump)
    repo.git("push", "--quiet", "origin", "HEAD:main")
    item = wait_for(
        lambda: (
            (t := process.tag("shop/app:test"))
            and (t["notPinned"] or {}).get("reason") == "RevertRespected"
            and t
        )
    )
    assert item["notPinned"]["image"] == second
    assert item["image"] == first and pinned(repo) == first


def test_metrics_parse_and_match_what_happened(app, daemon, seeder, repo_name, registry):
    """/metrics parses with prometheus_client; passes, bumps, registry requests and tag states
    count what happened."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    second = seeder.push_image(repo_name, "1.0", salt="metrics")
    wait_for(lambda: pinned(repo) == second)
    # two tags added, then both moved (test and its follower latest)
    wait_for(lambda: process.metric("streamlock_tag_bumps_total") == 4)
    assert process.metric("streamlock_pass_total", result="success") >= 2
    assert process.metric("streamlock_pass_total", result="error") == 0
    assert process.metric("streamlock_registry_requests_total", registry=registry.host) > 0
    assert process.metric("streamlock_registry_request_duration_seconds_count") > 0
    assert process.metric("streamlock_tags", state="ready") == 2
    assert process.metric("streamlock_last_success_timestamp_seconds") > 0
    assert process.metric("streamlock_push_conflicts_total") == 0


SLOW_PUSH_HOOK = """#!/bin/sh
touch "$GIT_DIR/push-started"
sleep 2
exit 0
"""


def test_sigterm_mid_push_finishes_the_pass(app, daemon, seeder, repo_name):
    """SIGTERM during a push: the pass finishes, the daemon exits 0, remote and clone agree."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    hook = repo.remote / "hooks" / "pre-receive"
    hook.write_text(SLOW_PUSH_HOOK)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    second = seeder.push_image(repo_name, "1.0", salt="mid-push")
    wait_for(lambda: (repo.remote / "push-started").exists(), timeout=30)
    assert process.stop(signal.SIGTERM) == 0
    assert pinned(repo) == second
    clone = process.workdir / "repo"
    assert git(clone, "status", "--porcelain") == ""
    assert git(clone, "rev-parse", "HEAD").strip() == repo.remote_head()


def test_registry_down_marks_tags_failed_and_keeps_ready(config_repo, daemon, seeder, repo_name):
    """A registry nobody answers on: its tag is failed (not stalled) and retried, the other
    tags are pinned, and the daemon stays up and ready."""
    from tests.fixtures.registry_server import free_port

    good = seeder.push_image(repo_name, "1.0", salt="up")
    down = f"127.0.0.1:{free_port()}/shop/down:1.0"
    tags = docker_tag("test", seeder.ref(repo_name, "1.0")) + docker_tag("down", down)
    repo = config_repo({"streamlock.yaml": FAST, "streams/shop/app.yaml": stream_file("app", tags)})
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == good)
    item = wait_for(lambda: (t := process.tag("shop/app:down")) and t["lastError"] and t)
    assert item["state"] == "failed" and item["lastError"].startswith("RegistryUnavailable")
    wait_for(lambda: process.metric("streamlock_pass_total", result="failed") >= 2)
    assert process.get("/readyz").status_code == 200
    assert process.process.poll() is None


def test_unreachable_remote_is_retried_and_counted(app, daemon, seeder, repo_name):
    """A remote that vanishes fails passes (counted in metrics, daemon still ready); once it is
    back, the pending bump lands."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    moved = repo.remote.with_name("moved.git")
    repo.remote.rename(moved)
    wait_for(lambda: process.metric("streamlock_git_errors_total") >= 2)
    assert process.get("/readyz").status_code == 200
    second = seeder.push_image(repo_name, "1.0", salt="after-outage")
    moved.rename(repo.remote)
    wait_for(lambda: pinned(repo) == second, timeout=60)


def test_broken_stream_file_is_reported_and_others_reconciled(app, daemon, seeder, repo_name):
    """A stream file a person broke shows in /status problems; the other streams still move."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    repo.pull()
    repo.commit({"streams/shop/broken.yaml": "kind: ImageStream\nspec: [\n"}, "broken")
    second = seeder.push_image(repo_name, "1.0", salt="despite-broken")
    wait_for(lambda: pinned(repo) == second)
    problems = wait_for(lambda: process.status()["problems"])
    assert any("streams/shop/broken.yaml" in p for p in problems)
    assert process.get("/readyz").status_code == 200


def test_status_shows_a_held_tag_and_its_reason(app, daemon, seeder, repo_name):
    """A tag a person holds keeps its pin; /status says Held, gives the hold reason and the
    digest the hold keeps out."""
    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    hold = "    annotations:\n      streamlock.dev/hold: waiting for QA\n"
    tags = docker_tag("test", seeder.ref(repo_name, "1.0"), extra=hold)
    repo.pull()
    repo.commit({"streams/shop/app.yaml": stream_file("app", tags)}, "hold shop/app:test")
    held_back = seeder.push_image(repo_name, "1.0", salt="held-back")
    item = wait_for(
        lambda: (
            (t := process.tag("shop/app:test"))
            and t["hold"] == "waiting for QA"
            and t["notPinned"]["image"] == held_back
            and t
        )
    )
    assert item["notPinned"]["reason"] == "Held" and item["image"] == first
    assert pinned(repo) == first


def test_logs_are_json_lines_from_every_library(app, daemon):
    """Every log line is one JSON object, uvicorn's included; each pass logs one line with
    its counts and duration."""
    import json

    repo, first = app
    process = daemon(repo)
    wait_for(lambda: pinned(repo) == first)
    assert process.stop() == 0
    records = [json.loads(line) for line in process.log.read_text().splitlines()]
    assert all("msg" in r and "level" in r and "ts" in r for r in records)
    assert any(r.get("logger", "").startswith("uvicorn") for r in records)
    passes = [r for r in records if r["msg"] == "pass"]
    assert passes and {"tags", "bumped", "failed", "seconds", "result"} <= passes[0].keys()


STUCK_PUSH_HOOK = """#!/bin/sh
touch "$GIT_DIR/push-started"
sleep 15
exit 1
"""


def test_sigterm_abandons_a_stuck_pass_and_the_next_start_converges(app, daemon, seeder, repo_name):
    """A push that outlives --stop-grace is abandoned: exit 0 at once; the next start cleans up
    and lands the bump exactly once."""
    repo, first = app
    process = daemon(repo, args=["--stop-grace", "1s"])
    wait_for(lambda: pinned(repo) == first)
    hook = repo.remote / "hooks" / "pre-receive"
    hook.write_text(STUCK_PUSH_HOOK)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    second = seeder.push_image(repo_name, "1.0", salt="stuck")
    wait_for(lambda: (repo.remote / "push-started").exists(), timeout=30)
    assert process.stop(signal.SIGTERM, timeout=8) == 0
    hook.unlink()
    daemon(repo)
    wait_for(lambda: pinned(repo) == second, timeout=30)
    bumps = [c for c in repo.log(LOCK) if f"Streamlock-Image: {second}" in c["message"]]
    assert len(bumps) == 1


def test_unusable_config_makes_it_unready_until_fixed(app, daemon, seeder, repo_name):
    """A streamlock.yaml that does not load makes /readyz 503 with the reason (and /healthz
    stays 200); once fixed, the daemon is ready again and reconciles."""
    repo, first = app
    process = daemon(repo, poll="1s")
    wait_for(lambda: pinned(repo) == first)
    repo.pull()
    repo.commit({"streamlock.yaml": "apiVersion: streamlock/v1\nkind: Config\nplatform: 7\n"}, "x")
    answer = wait_for(lambda: (r := process.get("/readyz?verbose")).status_code == 503 and r)
    assert "[-]config failed" in answer.text and "streamlock.yaml" in answer.text
    assert process.get("/healthz").status_code == 200
    repo.commit({"streamlock.yaml": FAST}, "fixed")
    second = seeder.push_image(repo_name, "1.0", salt="after-fix")
    wait_for(lambda: process.get("/readyz").status_code == 200)
    wait_for(lambda: pinned(repo) == second)


def test_each_pass_fetches_the_remote_once(app, daemon, counting_git, tmp_path: Path):
    """The workdir's sync fetches before a pass; the pass itself starts at that tip."""
    repo, _ = app
    calls = tmp_path / "git-calls.log"
    process = daemon(repo, env={**counting_git, "GIT_CALLS": str(calls)})
    wait_for(lambda: process.metric("streamlock_pass_total", result="success") >= 3)
    passes = sum(process.metric("streamlock_pass_total", result=r) for r in RESULTS)
    fetches = calls.read_text().split().count("fetch")
    assert passes >= 3 and fetches <= passes + 1  # one more: a pass may have begun since
