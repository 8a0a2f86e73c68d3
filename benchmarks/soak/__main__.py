"""``python -m benchmarks.soak [--seconds N] [--no-notifications]``: ten minutes of daemon life.

A real registry (notifications to the daemon), a bare remote and ``streamlock run``; a driver
pushes a new image every few seconds, a person-like process commits a stream edit every minute,
and a chaos step kill -9s the daemon three times and restarts it. Printed: images pushed vs
bumps on the remote (equal, none twice), median and p95 delay from registry push to remote
commit, the daemon's RSS after warm-up vs at the end, and its open file descriptors and child
processes at the end. Exit 1 if a figure misses its bound. Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from reconciler.config import parse_duration
from tests.fixtures.daemon import DaemonProcess, wait_for
from tests.fixtures.gitremote import BRANCH, git, make_config_repo
from tests.fixtures.images import Seeder
from tests.fixtures.registry_server import RegistryServer, free_port, notification_endpoint

TOKEN = "soak-registry-token"
REPO = "soak/app"
LOCK = "locks/shop/app.lock.yaml"
PUSH_EVERY = 3.0
PERSON_EVERY = 60.0
WARM_UP = 30.0  # seconds after the last restart (or a quarter of a short run)
KILLS = 3


def stream(tags: str, name: str = "app", note: str = "") -> str:
    annotations = f"  annotations:\n    note: {note!r}\n" if note else ""
    return (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\n"
        f"metadata:\n  name: {name}\n  namespace: shop\n{annotations}spec:\n  tags:\n{tags}"
    )


def scheduled(tag: str, ref: str) -> str:
    return (
        f"  - name: {tag}\n    from: {{kind: DockerImage, name: {ref}}}\n"
        "    importPolicy: {scheduled: true}\n"
    )


class Watcher(threading.Thread):
    """Polls the remote's branch; records when each digest first appears in the lock."""

    def __init__(self, remote: Path) -> None:
        super().__init__(daemon=True)
        self.remote = remote
        self.seen: dict[str, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        last = ""
        while not self.halt.is_set():
            head = git(self.remote, "rev-parse", BRANCH).strip()
            if head != last:
                now = time.monotonic()
                last = head
                text = git(self.remote, "show", f"{head}:{LOCK}", check=False)
                for line in text.splitlines():
                    line = line.strip()
                    if line.startswith("image: sha256:"):
                        self.seen.setdefault(line.split(": ", 1)[1], now)
            self.halt.wait(0.02)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> int:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True)
    return len(out.stdout.split())


def person(root: Path, remote: Path, count: int, web: str) -> None:
    """A person edits another stream on the remote (pull, edit, commit, push; retried)."""
    work = root / "person"
    if not work.exists():
        git(root, "clone", "--quiet", str(remote), str(work))
        git(work, "config", "user.name", "A Person")
        git(work, "config", "user.email", "person@example.com")
    for _ in range(10):
        git(work, "pull", "--quiet", "--rebase", "origin", BRANCH)
        path = work / "streams" / "shop" / "web.yaml"
        path.write_text(stream(scheduled("stable", web), "web", f"edit {count}"))
        git(work, "commit", "--quiet", "-am", f"shop/web: edit {count}")
        if git(work, "push", "--quiet", "origin", BRANCH, check=False) == "" and (
            git(work, "rev-parse", "HEAD").strip() == git(remote, "rev-parse", BRANCH).strip()
        ):
            return
        git(work, "reset", "--quiet", "--hard", f"origin/{BRANCH}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    parser.add_argument("--no-notifications", action="store_true")
    parser.add_argument("--poll", default="30s")
    args = parser.parse_args(argv)
    notify = not args.no_notifications
    root = Path(tempfile.mkdtemp(prefix="streamlock-soak-"))
    port = free_port()
    endpoints = []
    if notify:
        endpoints = [notification_endpoint(f"http://127.0.0.1:{port}/hooks/registry", token=TOKEN)]
    with RegistryServer(root / "registry", notifications=endpoints) as registry:
        seeder = Seeder.for_server(registry)
        pushed: list[tuple[str, float]] = []
        web = seeder.ref("soak/web", "stable")
        seeder.push_image("soak/web", "stable", salt="web")
        first = seeder.push_image(REPO, "latest", salt="soak-0")
        pushed.append((first, time.monotonic()))
        files = {
            # Without notifications a bump waits for the tag's due time: make it the poll.
            "streamlock.yaml": "apiVersion: streamlock/v1\nkind: Config\n"
            f"importInterval: {'15m' if notify else args.poll}\n",
            "streams/shop/app.yaml": stream(scheduled("latest", seeder.ref(REPO, "latest"))),
            "streams/shop/web.yaml": stream(scheduled("stable", web), "web"),
        }
        repo = make_config_repo(root / "repo", files)
        env = {"STREAMLOCK_REGISTRY_TOKEN": TOKEN}
        log = root / "daemon.log"
        make = lambda: DaemonProcess(  # noqa: E731
            repo.remote, root / "wd", port=port, poll=args.poll, env=env, log=log
        )
        daemon = make().start()
        watcher = Watcher(repo.remote)
        watcher.start()
        started = time.monotonic()
        end = started + args.seconds
        kills = [started + args.seconds * (i + 1) / (KILLS + 1) for i in range(KILLS)]
        next_push, next_person, edits = started + PUSH_EVERY, started + PERSON_EVERY, 0
        warm: tuple[int, int] | None = None
        last_start = started
        while time.monotonic() < end:
            now = time.monotonic()
            if kills and now >= kills[0]:
                kills.pop(0)
                daemon.kill()
                daemon.close()
                daemon = make().start()
                last_start, warm = time.monotonic(), None
            if warm is None and not kills and now - last_start >= min(WARM_UP, args.seconds / 8):
                warm = (rss_kib(daemon.process.pid), fds(daemon.process.pid))
            if now >= next_push:
                digest = seeder.push_image(REPO, "latest", salt=f"soak-{len(pushed)}")
                pushed.append((digest, time.monotonic()))
                next_push += PUSH_EVERY
            if now >= next_person:
                edits += 1
                person(root, repo.remote, edits, web)
                next_person += PERSON_EVERY
            time.sleep(0.05)
        last = pushed[-1][0]
        wait_for(lambda: last in watcher.seen, timeout=120, interval=0.1)
        pid = daemon.process.pid
        end_rss, end_fds, end_children = rss_kib(pid), fds(pid), children(pid)
        code = daemon.stop(signal.SIGTERM)
        watcher.halt.set()
        watcher.join(timeout=5)
        seeder.close()
    trailers = [
        line.split(": ", 1)[1]
        for line in git(repo.remote, "log", "--format=%B", BRANCH, "--", LOCK).splitlines()
        if line.startswith("Streamlock-Image: ")
    ]
    digests = [d for d, _ in pushed]
    delays = sorted(watcher.seen[d] - t for d, t in pushed[1:] if d in watcher.seen)
    p95 = delays[max(0, int(len(delays) * 0.95) - 1)] if delays else float("nan")
    median = statistics.median(delays) if delays else float("nan")
    twice = len(trailers) - len(set(trailers))
    warm_rss, warm_fds = warm or (0, 0)
    growth = (end_rss - warm_rss) / warm_rss * 100 if warm_rss else float("nan")
    bound = 2.0 if notify else parse_duration(args.poll) * 1.1 + 2.0  # interval + jitter
    checks = {
        # Without notifications, images replaced before their tag is due are never pinned.
        "images pushed = bumps on the remote"
        if notify
        else "bumps are pushed images, the last one landed": (
            len(set(trailers)) == len(digests)
            if notify
            else set(trailers) <= set(digests) and digests[-1] in trailers
        ),
        "no image committed twice": twice == 0,
        f"p95 delay < {bound:g} s": p95 < bound,
        "RSS growth < 10%": growth < 10,
        "no child processes left": end_children == 0,
        "file descriptors not growing": end_fds <= warm_fds + 2,
        "SIGTERM exit 0": code == 0,
    }
    rows = [
        ("duration", f"{args.seconds:.0f} s", f"notifications {'on' if notify else 'off'}"),
        ("images pushed", str(len(digests)), f"one every {PUSH_EVERY:g} s"),
        ("bumps on the remote", str(len(trailers)), f"{twice} twice"),
        ("person edits", str(edits), f"one every {PERSON_EVERY:g} s"),
        ("kill -9 and restart", str(KILLS), ""),
        ("delay push→remote median", f"{median:.3f} s", f"{len(delays)} images"),
        ("delay push→remote p95", f"{p95:.3f} s", f"max {delays[-1]:.3f} s" if delays else ""),
        (
            "RSS after warm-up",
            f"{warm_rss / 1024:.1f} MiB",
            f"{min(WARM_UP, args.seconds / 8):g} s after last restart",
        ),
        ("RSS at the end", f"{end_rss / 1024:.1f} MiB", f"{growth:+.1f}%"),
        ("open fds warm-up / end", f"{warm_fds} / {end_fds}", ""),
        ("child processes at the end", str(end_children), ""),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, detail in rows:
        print(f"{name.ljust(width)}  {value.ljust(12)}  {detail}")
    for name, ok in checks.items():
        print(f"{'✓' if ok else '✗'} {name}")
    print(f"logs and repositories in {root}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
