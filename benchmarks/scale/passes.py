"""Running things to measure: ``streamlock reconcile`` in its own process, git, clones."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.engine import RSS_WRAPPER

# The CLI runs as a child process that reports its own peak RSS at exit (RSS_WRAPPER). Linux
# keeps a process's peak RSS across execve, and a child forked from this process (which holds
# the whole world) would start from its size: /usr/bin/time, small, forks the pass instead.
TIME = "/usr/bin/time"
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
    "GIT_AUTHOR_NAME": "Bench Person",
    "GIT_AUTHOR_EMAIL": "person@example.com",
    "GIT_COMMITTER_NAME": "Bench Person",
    "GIT_COMMITTER_EMAIL": "person@example.com",
}


def git(cwd: Path, *args: str, stdin: bytes | None = None, timeout: float = 1800) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **GIT_ENV},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.decode()[-2000:]}")
    return result.stdout.decode()


@dataclass(frozen=True, slots=True)
class PassRun:
    seconds: float
    self_mb: float
    tree_mb: float
    code: int
    commits: int
    changed_tags: int
    failed_tags: int
    problems: int
    profile: str = ""

    @property
    def detail(self) -> str:
        return (
            f"{self.self_mb:.0f} MB streamlock ({self.tree_mb:.0f} MB largest in tree), "
            f"{self.commits} commits, {self.changed_tags} tags changed, exit {self.code}"
        )


def run_pass(work: Path, label: str, profile: Path | None = None) -> PassRun:
    """Time and peak memory of one ``streamlock reconcile --no-push`` process."""
    # Without /usr/bin/time (Debian package time) the figures include this process's size.
    cmd = [TIME, "-f", "tree-maxrss-kb %M"] if Path(TIME).exists() else []
    cmd += [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
        wrapper = Path(tempfile.gettempdir()) / "streamlock-scale-wrapper.py"
        wrapper.write_text(RSS_WRAPPER)
        cmd += [str(wrapper)]
    else:
        cmd += ["-c", RSS_WRAPPER]
    # The table a person or CI sees (JSON lists all 100,000 tags and costs a second more).
    cmd += ["reconcile", "--repo", str(work), "--no-push"]
    before = int(git(work, "rev-list", "--count", "HEAD"))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **GIT_ENV})
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    own = [line.split()[1] for line in stderr.splitlines() if line.startswith("streamlock-maxrss")]
    tree = [line.split()[1] for line in stderr.splitlines() if line.startswith("tree-maxrss")]
    if code != 0:
        print(f"  {label}: exit {code}\n{stderr[-3000:]}", file=sys.stderr)
    actions = [line.split()[3] for line in stdout.splitlines()[1:] if len(line.split()) > 4]
    run = PassRun(
        seconds=elapsed,
        self_mb=int(own[-1]) / 1024 if own else float("nan"),
        tree_mb=int(tree[-1]) / 1024 if tree else usage.ru_maxrss / 1024,
        code=code,
        commits=int(git(work, "rev-list", "--count", "HEAD")) - before,
        changed_tags=sum(1 for a in actions if a in ("added", "updated", "removed")),
        failed_tags=sum(1 for a in actions if a == "failed"),
        problems=stderr.count("✗ "),
    )
    print(f"  {label}: {run.seconds:.2f} s, {run.detail}", file=sys.stderr, flush=True)
    return run


def median_run(runs: Sequence[PassRun]) -> PassRun:
    """The run of median time (its memory with it), worst memory seen noted by the caller."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    return ordered[(len(ordered) - 1) // 2]


def timed_clone(url: str, dest: Path, *args: str) -> float:
    start = time.perf_counter()
    git(dest.parent, "clone", "--quiet", "--no-local", *args, url, str(dest))
    elapsed = time.perf_counter() - start
    git(dest, "config", "user.name", "Bench Person")
    git(dest, "config", "user.email", "person@example.com")
    return elapsed


def packed_size(repo: Path, revision: str) -> int:
    """Bytes of a fully delta-compressed pack of everything ``revision`` reaches."""
    proc = subprocess.run(
        ["git", "pack-objects", "--revs", "--stdout", "-q", "--window=10", "--depth=50"],
        cwd=repo,
        input=f"{revision}\n".encode(),
        capture_output=True,
        check=True,
        timeout=1800,
    )
    return len(proc.stdout)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
