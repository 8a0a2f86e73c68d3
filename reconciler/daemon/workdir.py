"""The daemon's own clone: made once, reused after, and brought back to the remote before use.

Layout of ``--workdir DIR``: ``DIR/daemon.lock`` (one daemon per workdir, an ``flock`` that
dies with its process) and ``DIR/repo`` (the clone). A clone is made in ``DIR/repo.partial``
and renamed when complete, so a kill during the first clone leaves nothing half made.

Nobody else commits in this clone, so before every pass it is fetched and hard-reset to the
remote branch and cleaned: the reconciler's own commits that never reached the remote are
dropped and recomputed (its trailers are its only state). On start, whatever a SIGKILL can
leave is removed first: git's lock files, a rebase, merge, cherry-pick or revert in progress,
a half-written index, untracked files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from reconciler.errors import GitError
from reconciler.gitrepo import GitRepo, redact

log = structlog.get_logger("streamlock.daemon")

REMOTE = "origin"
_STALE_WAIT = 2.0  # an orphaned git of a killed daemon gets this long to let go of its locks
_IN_PROGRESS = (
    "rebase-merge",
    "rebase-apply",
    "MERGE_HEAD",
    "MERGE_MSG",
    "MERGE_MODE",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "BISECT_LOG",
    "sequencer",
    "AUTO_MERGE",
)


@contextlib.contextmanager
def hold(workdir: Path) -> Iterator[None]:
    """Own ``workdir`` for the daemon's lifetime; a second daemon there fails at once."""
    workdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(workdir / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            raise GitError(
                f"another streamlock daemon ({owner or 'pid unknown'}) uses {workdir}",
                hint="give each replica its own --workdir",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def checkout(workdir: Path) -> Path:
    return workdir / "repo"


def prepare(url: str, workdir: Path, branch: str) -> GitRepo:
    """Clone on first start, reuse after; clean whatever a killed daemon left in the clone."""
    target = checkout(workdir)
    partial = workdir / "repo.partial"
    if partial.exists():
        shutil.rmtree(partial)
    if not (target / ".git").exists():
        if target.exists():
            shutil.rmtree(target)  # ours (made by a rename), but without .git: unusable
        log.info("cloning", url=redact(url), branch=branch, workdir=str(workdir))
        GitRepo.clone(url, partial, branch)
        partial.rename(target)
    repo = GitRepo.clone(url, target, branch)  # reuse: checks the remote is the same URL
    clean(repo, branch)
    return repo


def clean(repo: GitRepo, branch: str) -> None:
    """Remove what a SIGKILL at any instant can leave; the clone is the daemon's own."""
    git_dir = repo.git_dir
    locks = [p for p in git_dir.rglob("*.lock") if p.is_file() and p.name != "run.lock"]
    deadline = time.monotonic() + _STALE_WAIT
    while locks and time.monotonic() < deadline:
        time.sleep(0.05)
        locks = [p for p in locks if p.exists()]
    for lock in locks:
        log.warning("removing a stale git lock", path=str(lock.relative_to(git_dir)))
        lock.unlink(missing_ok=True)
    for name in _IN_PROGRESS:
        path = git_dir / name
        if path.is_dir():
            log.warning("abandoning an operation in progress", path=name)
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)
    # A torn index: git refuses to read it; it is rebuilt from HEAD by the reset below.
    index = git_dir / "index"
    if index.exists() and not repo.index_readable():
        log.warning("rebuilding a damaged index")
        index.unlink()
    repo.reset_hard()
    repo.checkout_branch(branch)
    repo.clean_untracked()


def sync(repo: GitRepo, branch: str) -> str:
    """Fetch and hard-reset to the remote branch; returns the revision now checked out."""
    tip = repo.fetch(REMOTE, branch)
    if repo.head() != tip:
        ahead = len(repo.commits(f"{tip}..HEAD")) if repo.head() else 0
        if ahead:
            log.warning("dropping unpushed commits of an earlier pass; recomputing", commits=ahead)
    repo.reset_hard(tip)
    repo.clean_untracked()
    return tip
