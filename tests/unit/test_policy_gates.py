"""The gates' arithmetic on a fake clock (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.policy.gates import Waiting, format_duration, min_age, soak

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_a_digest_seen_first_starts_its_window():
    """A digest not waiting yet waits from now."""
    gate = min_age(None, D1, "1.2", NOW, 7200)
    assert not gate.open and gate.waiting == Waiting(D1, "2026-11-30T12:00:00Z", "1.2")


def test_the_window_opens_exactly_at_min_age():
    """At first-seen + min-age the gate opens; a second before, it does not."""
    waiting = Waiting(D1, "2026-11-30T10:00:00Z")
    assert min_age(waiting, D1, None, NOW, 7200).open
    assert min_age(waiting, D1, None, NOW - timedelta(seconds=1), 7200).left == 1


def test_another_digest_restarts_the_window():
    """A different digest replaces the waiting one with a fresh first-seen time."""
    gate = min_age(Waiting(D1, "2026-11-30T01:00:00Z"), D2, None, NOW, 7200)
    assert not gate.open and gate.waiting is not None and gate.waiting.image == D2


def test_an_unreadable_first_seen_restarts_the_window():
    """A hand-edited first-seen that does not parse starts over rather than landing."""
    assert not min_age(Waiting(D1, "yesterday"), D1, None, NOW, 60).open


def test_soak_counts_from_imported_at():
    """The soak opens 24h after importedAt and never without one."""
    assert soak("2026-11-29T12:00:00Z", NOW, 86400).open
    assert soak("2026-11-29T12:00:01Z", NOW, 86400).left == 1
    assert not soak(None, NOW, 60).open


def test_durations_print_in_go_spelling():
    """Whole seconds round up; zero prints 0s."""
    assert [format_duration(s) for s in (0, 0.2, 59, 3600, 5400, 90061)] == [
        "0s",
        "1s",
        "59s",
        "1h",
        "1h30m",
        "25h1m1s",
    ]
