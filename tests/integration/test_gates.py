"""Minimum age and promotion gates on a fake clock: real registry, real Git, restarts."""

from __future__ import annotations

from datetime import timedelta

from reconciler import status
from reconciler.inspect import describe, render_describe
from reconciler.lockfile import loads
from tests.fixtures.gitremote import ConfigRepo, git
from tests.fixtures.images import Seeder
from tests.integration.test_policies import T0, reconcile, status_of
from tests.integration.test_reconcile import lock_of, stream_file

HOUR = timedelta(hours=1)


def aged_tag(seeder: Seeder, repo_name: str, min_age: str = "2h") -> str:
    return (
        f"  - name: test\n    annotations:\n      streamlock.dev/min-age: {min_age}\n"
        f"    from:\n      kind: DockerImage\n      name: {seeder.ref(repo_name, '1')}\n"
        "    importPolicy:\n      scheduled: true\n"
    )


def promoted_tag(soak: str = "24h") -> str:
    return (
        f"  - name: prod\n    annotations:\n      streamlock.dev/promote-after: {soak}\n"
        "    from:\n      kind: ImageStreamTag\n      name: app:test\n"
    )


def pinned(repo: ConfigRepo, tag: str = "test") -> str:
    return lock_of(repo).tags[tag].image


def test_a_tag_without_a_pin_is_pinned_at_once(config_repo, seeder, repo_name):
    """min-age does not delay the first pin of a tag."""
    first = seeder.push_image(repo_name, "1", salt="a")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", aged_tag(seeder, repo_name))})
    reconcile(repo)
    assert pinned(repo) == first


def test_a_new_digest_waits_then_lands(config_repo, seeder, repo_name):
    """A new digest is recorded as waiting, kept out for 2h, and pinned after."""
    first = seeder.push_image(repo_name, "1", salt="a")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", aged_tag(seeder, repo_name))})
    reconcile(repo)
    second = seeder.push_image(repo_name, "1", salt="b")
    result = reconcile(repo, T0 + HOUR)
    found = status_of(result, "test")
    assert found.reason == status.WAITING_MIN_AGE
    assert "waits 2h more" in found.message
    entry = lock_of(repo).tags["test"]
    assert (entry.image, entry.waiting.image) == (first, second)
    assert entry.waiting.first_seen == "2026-11-30T13:00:00Z"
    commits = repo.commit_count()
    result = reconcile(repo, T0 + 2 * HOUR)
    assert "waits 1h more" in status_of(result, "test").message
    assert repo.commit_count() == commits  # waiting on: nothing to write
    reconcile(repo, T0 + 3 * HOUR)
    assert pinned(repo) == second
    assert lock_of(repo).tags["test"].waiting is None


def test_a_restart_keeps_the_first_seen_time(config_repo, seeder, repo_name, tmp_path):
    """A fresh clone (a restart or another replica) lands the digest when the window ends."""
    seeder.push_image(repo_name, "1", salt="a")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", aged_tag(seeder, repo_name))})
    reconcile(repo)
    second = seeder.push_image(repo_name, "1", salt="b")
    reconcile(repo, T0 + HOUR)
    other = ConfigRepo(repo.clone(tmp_path / "replica"), repo.remote)
    git(other.work, "config", "user.email", "p@example.com")
    result = reconcile(other, T0 + 2 * HOUR)
    assert "waits 1h more" in status_of(result, "test").message
    reconcile(other, T0 + 3 * HOUR)
    assert pinned(repo) == second


def test_a_bad_push_fixed_within_the_window_never_lands(config_repo, seeder, repo_name):
    """A digest replaced within the window never lands; its successor waits afresh."""
    seeder.push_image(repo_name, "1", salt="a")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", aged_tag(seeder, repo_name))})
    reconcile(repo)
    before = pinned(repo)
    bad = seeder.push_image(repo_name, "1", salt="bad")
    reconcile(repo, T0 + HOUR)
    fixed = seeder.push_image(repo_name, "1", salt="fixed")
    reconcile(repo, T0 + 2 * HOUR + 30 * timedelta(minutes=1))
    entry = lock_of(repo).tags["test"]
    assert entry.image == before
    assert (entry.waiting.image, entry.waiting.first_seen) == (fixed, "2026-11-30T14:30:00Z")
    assert all(f"Streamlock-Image: {bad}" not in c["message"] for c in repo.log())


def test_a_tag_moved_back_clears_the_waiting_digest(config_repo, seeder, repo_name):
    """When the registry serves the pinned digest again, the waiting one is dropped."""
    seeder.push_image(repo_name, "1", salt="a")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", aged_tag(seeder, repo_name))})
    reconcile(repo)
    seeder.push_image(repo_name, "1", salt="b")
    reconcile(repo, T0 + HOUR)
    seeder.push_image(repo_name, "1", salt="a")
    reconcile(repo, T0 + 5 * HOUR)
    assert lock_of(repo).tags["test"].waiting is None


def test_describe_shows_the_waiting_digest_and_time_left(config_repo, seeder, repo_name):
    """describe names the waiting digest, when it was first seen and the time left."""
    seeder.push_image(repo_name, "1", salt="a")
    text = stream_file("app", aged_tag(seeder, repo_name))
    repo = config_repo({"streams/shop/app.yaml": text})
    reconcile(repo)
    seeder.push_image(repo_name, "1", salt="b")
    reconcile(repo, T0 + HOUR)
    from reconciler.config import Config
    from reconciler.imagestream import parse_streams

    stream = parse_streams({"streams/shop/app.yaml": text.encode()}, Config()).streams[0]
    lock = loads(repo.read_remote("locks/shop/app.lock.yaml").encode())
    shown = render_describe(describe(stream, lock), T0 + 90 * timedelta(minutes=1))
    assert "first seen 2026-11-30T13:00:00Z, 1h30m left (min-age 2h)" in shown


# --- promotion ------------------------------------------------------------------------------


def soaking_repo(config_repo, seeder, repo_name):
    first = seeder.push_image(repo_name, "1", salt="a")
    tags = (
        "  - name: test\n    from:\n      kind: DockerImage\n"
        f"      name: {seeder.ref(repo_name, '1')}\n"
        "    importPolicy:\n      scheduled: true\n"
    ) + promoted_tag()
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    reconcile(repo)
    return repo, first


def test_a_follower_promotes_only_after_the_soak(config_repo, seeder, repo_name):
    """prod follows test's new image only once test has held it for 24h."""
    repo, first = soaking_repo(config_repo, seeder, repo_name)
    assert pinned(repo, "prod") == first  # a follower without a pin follows at once
    second = seeder.push_image(repo_name, "1", salt="b")
    result = reconcile(repo, T0 + HOUR)
    assert pinned(repo, "test") == second
    assert pinned(repo, "prod") == first
    found = status_of(result, "prod")
    assert found.reason == status.WAITING_PROMOTION
    assert "promotes in 1d" not in found.message and "promotes in 24h" in found.message
    result = reconcile(repo, T0 + 13 * HOUR)
    assert "promotes in 12h" in status_of(result, "prod").message
    reconcile(repo, T0 + 25 * HOUR)
    assert pinned(repo, "prod") == second
    message = repo.log("locks/shop/app.lock.yaml", n=1)[0]["message"]
    assert "promoted after a 24h soak in shop/app:test" in message


def test_a_revert_in_test_cancels_the_promotion(config_repo, seeder, repo_name):
    """A person's revert of test's bump within the window means prod never gets that image."""
    repo, first = soaking_repo(config_repo, seeder, repo_name)
    second = seeder.push_image(repo_name, "1", salt="b")
    reconcile(repo, T0 + HOUR)
    assert pinned(repo, "prod") == first
    repo.pull()
    bump = repo.log(n=1)[0]["sha"]
    repo.git("revert", "--no-edit", bump)
    repo.git("push", "origin", "HEAD")
    reconcile(repo, T0 + 30 * HOUR)
    assert pinned(repo, "test") == first  # the revert is respected while the registry serves it
    assert pinned(repo, "prod") == first
    assert second not in {c["message"] for c in repo.log()}


def test_a_restart_during_the_soak_keeps_the_count(config_repo, seeder, repo_name, tmp_path):
    """A fresh clone mid-soak counts from test's importedAt in Git."""
    repo, _ = soaking_repo(config_repo, seeder, repo_name)
    second = seeder.push_image(repo_name, "1", salt="b")
    reconcile(repo, T0 + HOUR)
    other = ConfigRepo(repo.clone(tmp_path / "replica"), repo.remote)
    result = reconcile(other, T0 + 20 * HOUR)
    assert "promotes in 5h" in status_of(result, "prod").message
    reconcile(other, T0 + 25 * HOUR)
    assert pinned(repo, "prod") == second


def test_a_failed_import_in_test_holds_the_promotion(config_repo, seeder, repo_name):
    """When test's import fails in a pass, prod does not promote in that pass."""
    repo, first = soaking_repo(config_repo, seeder, repo_name)
    seeder.push_image(repo_name, "1", salt="b")
    reconcile(repo, T0 + HOUR)
    seeder.delete_tag_manifest(repo_name, "1")
    result = reconcile(repo, T0 + 25 * HOUR)
    assert status_of(result, "test").action == status.FAILED
    found = status_of(result, "prod")
    assert found.reason == status.WAITING_PROMOTION and "failed its last import" in found.message
    assert pinned(repo, "prod") == first


def test_plan_lists_a_waiting_tag_with_the_time_left(config_repo, seeder, repo_name):
    """``streamlock plan`` shows WaitingMinAge and how long the new digest still waits."""
    from tests.integration.test_reconcile import streamlock

    seeder.push_image(repo_name, "1", salt="a")
    text = stream_file("app", aged_tag(seeder, repo_name, "48h"))
    repo = config_repo({"streams/shop/app.yaml": text})
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    seeder.push_image(repo_name, "1", salt="b")
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    code, out, _ = streamlock("plan", "--repo", str(repo.work))
    assert code == 0
    assert "WaitingMinAge" in out and "more (min-age 48h" in out
