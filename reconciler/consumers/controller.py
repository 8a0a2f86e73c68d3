"""The trigger controller of a pass: consumer edits joined to the commits that move their tags.

OpenShift's trigger controller rewrites a Deployment when its tag moves; here the rewrite lands
in the very commit that moves the tag's lock, so one ``git revert`` undoes both and the revert
rule then keeps both. A consumer whose followed value differs from its tag's current lock (edited
by hand, added later, left behind) is brought back in a commit of its own. A consumer with a
problem is reported (``path:line:col``) and left untouched; the locks and the other consumers
go ahead. Pure: the reader hands in bytes and scans, the shell commits the returned plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler.consumers.scan import Scan, rewrite
from reconciler.consumers.slots import Pin, pins
from reconciler.errors import Problem
from reconciler.lockfile import StreamLock
from reconciler.planner import Plan, PlannedCommit
from reconciler.trailers import format_message

REPAIR_KEY = "Streamlock-Consumers"
REPAIR_VALUE = "follow-locks"
REPAIR_SUBJECT = "consumers: follow the locks"


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer file as read: its bytes and what it follows."""

    path: str
    data: bytes
    scan: Scan


@dataclass(frozen=True, slots=True)
class Following:
    """The plan with consumer edits, and the consumers that could not follow."""

    plan: Plan
    problems: tuple[Problem, ...]
    rewritten: tuple[str, ...]  # paths whose bytes change in this pass
    scans: Mapping[str, tuple[bytes, Scan]] = field(default_factory=dict)  # of the new bytes


def is_repair(message: str) -> bool:
    """A commit made by ``follow`` to bring consumers back to the locks."""
    return any(line.strip() == f"{REPAIR_KEY}: {REPAIR_VALUE}" for line in message.splitlines()[1:])


def _moved(old: Mapping[str, Pin], new: Mapping[str, Pin], commit: PlannedCommit) -> frozenset[str]:
    return frozenset(c.key for c in commit.changes if old.get(c.key) != new.get(c.key))


def _with_files(commit: PlannedCommit, files: Mapping[str, bytes]) -> PlannedCommit:
    paragraphs = commit.message.rstrip("\n").split("\n\n")
    listed = "Consumers: " + ", ".join(sorted(files))
    if len(paragraphs) > 1 and paragraphs[-1].startswith("Streamlock-"):
        paragraphs.insert(len(paragraphs) - 1, listed)
    else:
        paragraphs.append(listed)
    return replace(commit, files={**commit.files, **files}, message="\n\n".join(paragraphs) + "\n")


def follow(
    plan: Plan,
    consumers: Sequence[Consumer],
    old_locks: Mapping[tuple[str, str], StreamLock],
    default_namespace: str,
) -> Following:
    """Join consumer rewrites to ``plan``: each in the commit that moves its tag, drift apart."""
    old, new = pins(old_locks), pins(plan.locks)
    moved = [_moved(old, new, commit) for commit in plan.commits]
    moving = frozenset().union(*moved)
    problems: list[Problem] = []
    added: list[dict[str, bytes]] = [{} for _ in plan.commits]
    repair: dict[str, bytes] = {}
    repair_lines: list[str] = []
    scans: dict[str, tuple[bytes, Scan]] = {}
    for consumer in consumers:
        scan = consumer.scan
        if not scan.slots and not scan.problems:
            continue
        found = list(scan.problems)
        found += [p for slot in scan.slots if (p := slot.problem(consumer.path, new)) is not None]
        if found:
            problems.extend(found)
            continue
        current = consumer.data
        steady = scan.tags - moving
        if scan.differs(new, steady):
            result = rewrite(consumer.path, current, new, default_namespace, only=steady)
            problems.extend(result.problems)
            if result.problems:
                continue
            repair[consumer.path] = current = result.data
            repair_lines += [
                f"{consumer.path}: {tag} → {new[tag].reference}" for tag in sorted(result.tags)
            ]
        for index, tags in enumerate(moved):
            if not tags & scan.tags:
                continue
            result = rewrite(consumer.path, current, new, default_namespace, only=tags)
            if result.data != current:
                added[index][consumer.path] = current = result.data
        if current != consumer.data and current.count(b"\n") == consumer.data.count(b"\n"):
            # Values changed in place: the new bytes hold the same slots, now equal to the pins
            # (a kustomize field added as a line moves positions: that file is parsed again).
            slots = tuple(replace(slot, value=slot.wanted(new)) for slot in scan.slots)
            scans[consumer.path] = (current, Scan(slots, ()))
    commits = [
        _with_files(commit, files) if files else commit
        for commit, files in zip(plan.commits, added, strict=True)
    ]
    if repair:
        body = "Consumers whose images differ from their tags' locks:\n" + "\n".join(repair_lines)
        message = format_message(REPAIR_SUBJECT, body, ())
        message = message.rstrip("\n") + f"\n\n{REPAIR_KEY}: {REPAIR_VALUE}\n"
        # First: the bump commits' bytes already hold the repaired values.
        commits.insert(0, PlannedCommit(REPAIR_SUBJECT, message, dict(repair), ()))
    files = dict(plan.files)
    for commit in commits:
        files.update({p: d for p, d in commit.files.items() if not p.startswith("locks/")})
    rewritten = tuple(sorted(p for p in files if p not in plan.files))
    return Following(
        replace(plan, files=files, commits=tuple(commits)),
        tuple(sorted(set(problems))),
        rewritten,
        scans,
    )
