"""When a new image may land: minimum age and promotion soaks, decided from times in Git.

Pure: every time comes in as a value (the lock's ``firstSeen``/``importedAt`` and the pass's
``now``), so a fake clock tests it and restarts and replicas agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 UTC time as the lock writes it, else None."""
    if not text:
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: float) -> str:
    """``2h``, ``1h30m``, ``45s``: Go's spelling, whole seconds."""
    total = max(0, int(seconds + 0.999))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


@dataclass(frozen=True, slots=True)
class Waiting:
    """A digest that is observed but may not land yet."""

    image: str
    first_seen: str
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class Gate:
    """A gate's verdict: ``open`` lets the image land; otherwise ``left`` seconds remain."""

    open: bool
    left: float = 0.0
    waiting: Waiting | None = None


def min_age(
    waiting: Waiting | None, image: str, tag: str | None, now: datetime, seconds: float
) -> Gate:
    """Whether ``image`` has been observed for ``seconds``; it restarts for another digest.

    The first time a digest is seen it becomes the waiting one with ``now``; a different digest
    later replaces it (a bad push fixed within the window never lands).
    """
    if waiting is None or waiting.image != image:
        return Gate(False, seconds, Waiting(image, rfc3339(now), tag))
    seen = parse_time(waiting.first_seen)
    if seen is None:  # an unreadable time: start the window again
        return Gate(False, seconds, Waiting(image, rfc3339(now), tag))
    age = (now - seen).total_seconds()
    if age >= seconds:
        return Gate(True)
    return Gate(False, seconds - age, waiting)


def soak(held_since: str | None, now: datetime, seconds: float) -> Gate:
    """Whether the upstream has held its image for ``seconds`` (since its ``importedAt``)."""
    since = parse_time(held_since)
    if since is None:
        return Gate(False, seconds)
    age = (now - since).total_seconds()
    return Gate(True) if age >= seconds else Gate(False, seconds - age)
