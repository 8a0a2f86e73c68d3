"""The daemon's memory between passes: due times with jitter, backoff, shards, per-tag status."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler import status
from reconciler.daemon.state import (
    Schedule,
    Shard,
    TagState,
    WatchedTag,
    conditions,
    jitter,
    tag_state,
)
from reconciler.status import TagStatus

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
INTERVAL = 900.0
TAG = WatchedTag("shop/app:test", "shop", "reg/app:1", "reg/app:1", scheduled=True)
TAGS = {TAG.key: TAG}


def checked(action: str = status.UNCHANGED, reason: str = status.UP_TO_DATE) -> TagStatus:
    return TagStatus("shop", "app", "test", action, reason)


def test_jitter_is_stable_and_within_a_tenth():
    """Jitter depends on the tag only and stays below a tenth of the interval."""
    values = [jitter(f"ns/s:{i}", INTERVAL) for i in range(1000)]
    assert all(0 <= v < INTERVAL / 10 for v in values)
    assert jitter("ns/s:1", INTERVAL) == jitter("ns/s:1", INTERVAL)
    assert len({round(v) for v in values}) > 50  # spread, not one instant


def test_checked_tag_is_due_one_interval_plus_jitter_later():
    """After a successful check the next due time is now + interval + the tag's jitter."""
    schedule = Schedule().after_pass([checked()], TAGS, NOW, INTERVAL)
    due = schedule.due_at(TAG.key, INTERVAL)
    assert due == NOW + timedelta(seconds=INTERVAL + jitter(TAG.key, INTERVAL))


def test_transient_failure_retries_with_growing_backoff():
    """A transient failure is retried after 5 s, then 10 s, capped at the interval."""
    failed = checked(status.FAILED, status.REGISTRY_UNAVAILABLE)
    one = Schedule().after_pass([failed], TAGS, NOW, INTERVAL)
    two = one.after_pass([failed], TAGS, NOW, INTERVAL)
    assert one.due_at(TAG.key, INTERVAL) == NOW + timedelta(seconds=5)
    assert two.due_at(TAG.key, INTERVAL) == NOW + timedelta(seconds=10)
    many = two
    for _ in range(20):
        many = many.after_pass([failed], TAGS, NOW, INTERVAL)
    assert many.due_at(TAG.key, INTERVAL) == NOW + timedelta(seconds=INTERVAL)


def test_not_due_tags_keep_their_time():
    """A NotDue status does not move the tag's due time."""
    first = Schedule().after_pass([checked()], TAGS, NOW, INTERVAL)
    later = NOW + timedelta(seconds=60)
    second = first.after_pass([checked(reason=status.NOT_DUE)], TAGS, later, INTERVAL)
    assert second.due_at(TAG.key, INTERVAL) == first.due_at(TAG.key, INTERVAL)


def test_due_now_forgets_the_check():
    """A hook makes the named tag due at once (the planner treats it as never checked)."""
    schedule = Schedule().after_pass([checked()], TAGS, NOW, INTERVAL).due_now([TAG.key])
    assert TAG.key not in schedule.last_checked


def test_next_due_is_the_earliest_scheduled_tag():
    """next_due is the earliest due time among scheduled tags."""
    other = WatchedTag("shop/app:b", "shop", "reg/b:1", "reg/b:1", scheduled=True)
    schedule = Schedule({TAG.key: NOW, other.key: NOW - timedelta(seconds=60)})
    assert schedule.next_due([TAG, other], INTERVAL) == NOW + timedelta(seconds=INTERVAL - 60)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0/3", Shard(0, 3)), ("2/3", Shard(2, 3)), (None, Shard())],
)
def test_shard_parse(text, expected):
    """--shard I/N parses; none means everything."""
    assert Shard.parse(text, None) == expected


@pytest.mark.parametrize("text", ["3/3", "a/b", "1", "-1/2", "0/0"])
def test_shard_parse_refuses_nonsense(text):
    """I must be below N, both numbers."""
    with pytest.raises(ValueError):
        Shard.parse(text, None)


def test_shards_partition_namespaces():
    """Every namespace belongs to exactly one of N shards."""
    names = [f"ns{i}" for i in range(200)]
    shards = [Shard(i, 3) for i in range(3)]
    for name in names:
        assert sum(shard.owns(name) for shard in shards) == 1
    assert all(any(shard.owns(n) for n in names) for shard in shards)


def test_namespaces_list():
    """--namespaces a,b owns exactly those."""
    shard = Shard.parse(None, "a, b")
    assert shard.owns("a") and shard.owns("b") and not shard.owns("c")
    with pytest.raises(ValueError):
        Shard.parse("0/2", "a")


def test_failed_permanent_tag_is_stalled():
    """A ManifestUnknown failure is Stalled with its error; a 503 is only not ready."""
    gone = tag_state(checked(status.FAILED, status.MANIFEST_UNKNOWN), None, None, NOW)
    down = tag_state(checked(status.FAILED, status.REGISTRY_UNAVAILABLE), None, None, NOW)
    assert gone.state == "stalled" and down.state == "failed"
    assert gone.last_error.startswith("ManifestUnknown")
    assert [c["type"] for c in conditions(gone, False)] == ["Ready", "Stalled"]
    assert [c["type"] for c in conditions(down, True)] == ["Ready", "Reconciling"]


def test_not_due_keeps_the_last_outcome():
    """A tag not looked at keeps the error of the pass that last looked."""
    failed = tag_state(checked(status.FAILED, status.REGISTRY_UNAVAILABLE), None, None, NOW)
    later = tag_state(checked(reason=status.NOT_DUE), failed, None, NOW)
    assert later.state == "failed" and later.last_error == failed.last_error


def test_revert_respected_names_the_waiting_digest():
    """A respected revert says why and which digest waits."""
    item = checked(reason=status.REVERT_RESPECTED)
    state = tag_state(item, None, None, NOW, waiting_image="sha256:b")
    assert isinstance(state, TagState)
    assert (state.waiting_reason, state.waiting_image) == (status.REVERT_RESPECTED, "sha256:b")


@pytest.mark.parametrize("module", ["state", "hooks"])
def test_pure_daemon_modules_import_no_io(module):
    """The daemon's pure modules import no I/O library."""
    source = Path(__file__).resolve().parents[2] / "reconciler" / "daemon" / f"{module}.py"
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    io = {"httpx", "git", "subprocess", "asyncio", "socket", "starlette", "uvicorn", "os"}
    assert not names & io


def test_held_tag_is_recorded_only_when_looked_up():
    """A Held status moves the due time only if the daemon looked the source up for /status."""
    held = checked(reason=status.HELD)
    untouched = Schedule().after_pass([held], TAGS, NOW, INTERVAL)
    looked = Schedule().after_pass([held], TAGS, NOW, INTERVAL, looked_up={TAG.key})
    assert TAG.key not in untouched.last_checked
    assert looked.is_due(TAG.key, NOW, INTERVAL) is False
    assert untouched.is_due(TAG.key, NOW, INTERVAL) is True


def test_min_age_names_the_waiting_digest_from_the_lock():
    """/status shows WaitingMinAge and the digest the lock records as waiting."""
    from reconciler.imagestream import TagReference
    from reconciler.lockfile import LockEntry
    from reconciler.policy.gates import Waiting

    waiting = Waiting("sha256:" + "b" * 64, "2026-11-30T11:00:00Z")
    entry = LockEntry(
        TagReference("DockerImage", "reg/app:1"),
        "sha256:" + "a" * 64,
        "reg/app@x",
        "0",
        waiting=waiting,
    )
    state = tag_state(checked(reason=status.WAITING_MIN_AGE), None, entry, NOW)
    assert (state.waiting_reason, state.waiting_image) == (status.WAITING_MIN_AGE, waiting.image)
