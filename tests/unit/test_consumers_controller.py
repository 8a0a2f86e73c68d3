"""The trigger controller: consumer edits joined to the commits that move their tags."""

from __future__ import annotations

from reconciler.consumers.controller import Consumer, follow, is_repair
from reconciler.consumers.scan import scan
from reconciler.imagestream import TagReference
from reconciler.lockfile import LockEntry, StreamLock
from reconciler.planner import Plan, PlannedCommit, TagChange

OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64
PATH = "deploy/values.yaml"


def entry(tag: str, digest: str) -> LockEntry:
    return LockEntry(
        TagReference("DockerImage", f"quay.io/shop/app:{tag}"),
        digest,
        f"quay.io/shop/app@{digest}",
        "0" * 64,
    )


def locks(a: str, b: str) -> dict[tuple[str, str], StreamLock]:
    return {("shop", "app"): StreamLock("shop", "app", {"a": entry("a", a), "b": entry("b", b)})}


def values(a: str, b: str) -> bytes:
    return (
        f'a: quay.io/shop/app@{a}  # {{"$imagestream": "shop/app:a"}}\n'
        f'b: quay.io/shop/app@{b}  # {{"$imagestream": "shop/app:b"}}\n'
    ).encode()


def commit(tag: str, old: str, new: str) -> PlannedCommit:
    change = TagChange("shop", "app", tag, entry(tag, old), entry(tag, new))
    message = f"shop/app: {tag}\n\nbody\n\nStreamlock-Tag: shop/app:{tag}\n"
    return PlannedCommit(f"shop/app: {tag}", message, {"locks/shop/app.lock.yaml": b"x"}, (change,))


def consumer(data: bytes) -> Consumer:
    return Consumer(PATH, data, scan(PATH, data, "shop"))


def test_one_file_moved_by_two_commits_changes_step_by_step():
    """With a commit per tag, each commit holds the file with only its own tag moved."""
    plan = Plan(locks(NEW, NEW), {}, (commit("a", OLD, NEW), commit("b", OLD, NEW)), (), ())
    result = follow(plan, [consumer(values(OLD, OLD))], locks(OLD, OLD), "shop")
    first, second = result.plan.commits
    assert first.files[PATH] == values(NEW, OLD)
    assert second.files[PATH] == values(NEW, NEW)
    assert result.plan.files[PATH] == values(NEW, NEW)
    assert "Consumers: deploy/values.yaml" in first.message
    assert first.message.rstrip().endswith("Streamlock-Tag: shop/app:a")


def test_drift_is_repaired_first_and_the_bump_builds_on_it():
    """A hand-edited value is repaired in a commit before the bump, which keeps the repair."""
    plan = Plan(locks(NEW, OLD), {}, (commit("a", OLD, NEW),), (), ())
    edited = values(OLD, "sha256:" + "9" * 64)
    result = follow(plan, [consumer(edited)], locks(OLD, OLD), "shop")
    repair, bump = result.plan.commits
    assert is_repair(repair.message) and not is_repair(bump.message)
    assert repair.files == {PATH: values(OLD, OLD)}
    assert bump.files[PATH] == values(NEW, OLD)


def test_consumers_in_step_change_nothing():
    """Consumers that hold their pins add no file and no commit."""
    plan = Plan(locks(OLD, OLD), {}, (), (), ())
    result = follow(plan, [consumer(values(OLD, OLD))], locks(OLD, OLD), "shop")
    assert result.plan.commits == () and not result.plan.changed and result.problems == ()
