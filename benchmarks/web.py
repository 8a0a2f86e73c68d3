"""Web view benchmark: 5,000 streams and 50,000 tags in 50 namespaces, 10,000 earlier commits.

The repository is generated (stream files, locks in the format the reconciler writes, and
reconciler commits with trailers through ``git fast-import``); no registry is needed, since the
pages are rendered from what Git holds. Measures:
- building the site once (what the daemon does on the first ``/ui/`` request after a pass),
- rendering the overview page (server side) and its size on the wire,
- rendering one stream page (median over many),
- ``streamlock report --html`` as its own process, from reading the repository to the last file.

Targets (the web view issue): overview < 1 s and < 2 MB; a stream page < 100 ms; report < 30 s.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

NAMESPACES = 50
STREAMS_PER_NAMESPACE = 100
DOCKER_TAGS = 7  # v0..v6; then latest (alias of v6), prod (pin of v0), and one more
OVERVIEW_SECONDS = 1.0
OVERVIEW_BYTES = 2 * 1024 * 1024
STREAM_SECONDS = 0.1
REPORT_SECONDS = 30.0
HOST = "registry.bench.example"


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def _names() -> list[tuple[str, str]]:
    return [
        (f"ns{n:02d}", f"app{s:03d}")
        for n in range(NAMESPACES)
        for s in range(STREAMS_PER_NAMESPACE)
    ]


def _stream_yaml(namespace: str, name: str, index: int) -> str:
    lines = [
        "apiVersion: image.openshift.io/v1",
        "kind: ImageStream",
        f"metadata:\n  name: {name}\n  namespace: {namespace}",
        "spec:\n  tags:",
    ]
    for t in range(DOCKER_TAGS):
        lines.append(
            f"  - name: v{t}\n    from:\n      kind: DockerImage\n"
            f"      name: {HOST}/{namespace}/{name}:v{t}\n"
            "    importPolicy:\n      scheduled: true"
        )
    lines.append(
        f"  - name: latest\n    from:\n      kind: ImageStreamTag\n      name: v{DOCKER_TAGS - 1}"
    )
    lines.append(
        f"  - name: prod\n    from:\n      kind: ImageStreamImage\n"
        f"      name: {name}@{_digest(namespace, name, 0, 1)}"
    )
    if index % 10 == 0 and namespace != "ns00":
        lines.append(
            "  - name: upstream\n    from:\n      kind: ImageStreamTag\n"
            f"      name: {name}:latest\n      namespace: ns00"
        )
    else:
        lines.append(
            "  - name: extra\n    from:\n      kind: DockerImage\n"
            f"      name: {HOST}/{namespace}/{name}:extra"
        )
    return "\n".join(lines) + "\n"


def _config() -> str:
    pullers = ", ".join(f"ns{n:02d}" for n in range(1, NAMESPACES))
    return (
        "apiVersion: streamlock/v1\nkind: Config\n"
        f"git:\n  author: bench <bench@example.com>\n"
        f"access:\n  ns00:\n    pullers: [{pullers}]\n"
    )


def _write_locks(root: Path) -> None:
    """Every lock, as the reconciler would have written it after two passes."""
    from reconciler.config import load_config
    from reconciler.imagestream import IMAGE_STREAM_IMAGE, IMAGE_STREAM_TAG, load_streams
    from reconciler.lockfile import HistoryItem, LockEntry, StreamLock, dumps

    config = load_config(root)
    streams = {s.key: s for s in load_streams(root, config).streams}
    for (namespace, name), stream in streams.items():
        entries = {}
        for spec in stream.tags:
            if spec.source.kind == IMAGE_STREAM_IMAGE:
                image = _digest(namespace, name, 0, 1)
                history: tuple[HistoryItem, ...] = ()
            elif spec.source.kind == IMAGE_STREAM_TAG:
                target_ns, target, tag = spec.source.target(namespace, name)
                image = _digest(target_ns, target, tag[1:] if tag.startswith("v") else 6, 2)
                history = ()
            else:
                number = spec.name[1:] if spec.name.startswith("v") else "x"
                image = _digest(namespace, name, number, 2)
                old = _digest(namespace, name, number, 1)
                history = (
                    HistoryItem(
                        image, f"{HOST}/{namespace}/{name}@{image}", None, "2026-11-02T00:00:00Z"
                    ),
                    HistoryItem(
                        old, f"{HOST}/{namespace}/{name}@{old}", None, "2026-11-01T00:00:00Z"
                    ),
                )
            entries[spec.name] = LockEntry(
                spec.source,
                image,
                f"{HOST}/{namespace}/{name}@{image}",
                spec.spec_hash(namespace),
                created="2026-10-30T00:00:00Z",
                imported_at="2026-11-02T00:00:00Z",
                labels={"org.opencontainers.image.version": "1.2.3"},
                history=history,
            )
        path = root / "locks" / namespace / f"{name}.lock.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(dumps(StreamLock(namespace, name, entries, stream.path)))


def _history() -> bytes:
    """Two reconciler commits per stream (first import, one bump), trailers included."""
    out: list[bytes] = []
    stamp = 1_790_000_000
    n = 0
    for round_ in (1, 2):
        for namespace, name in _names():
            blocks = []
            for t in [*range(DOCKER_TAGS), "x"]:
                tag = f"v{t}" if t != "x" else "extra"
                previous = _digest(namespace, name, t, 1) if round_ == 2 else "none"
                blocks.append(
                    f"Streamlock-Tag: {namespace}/{name}:{tag}\n"
                    f"Streamlock-From: {HOST}/{namespace}/{name}:{tag}\n"
                    f"Streamlock-Previous: {previous}\n"
                    f"Streamlock-Image: {_digest(namespace, name, t, round_)}\n"
                )
            message = f"{namespace}/{name}: bump\n\nbody\n\n{''.join(blocks)}".encode()
            content = f"{n}\n".encode()
            out.append(b"commit refs/heads/main\n")
            out.append(f"author bench <bench@example.com> {stamp + n} +0000\n".encode())
            out.append(f"committer bench <bench@example.com> {stamp + n} +0000\n".encode())
            out.append(f"data {len(message)}\n".encode() + message)
            if n == 0:
                out.append(b"from refs/heads/main^0\n")
            out.append(f"M 100644 inline history.txt\ndata {len(content)}\n".encode() + content)
            n += 1
    return b"".join(out)


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True, timeout=900
    )


def make_repository(root: Path) -> None:
    """The benchmark's repository at ``root``: streams, locks and history, committed."""
    root.mkdir(parents=True)
    (root / "streamlock.yaml").write_text(_config())
    for index, (namespace, name) in enumerate(_names()):
        path = root / "streams" / namespace / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_stream_yaml(namespace, name, index % STREAMS_PER_NAMESPACE))
    _write_locks(root)
    _git(root, "init", "--quiet", "-b", "main")
    _commit(root, "--allow-empty", "-m", "start")
    _git(root, "fast-import", "--quiet", stdin=_history())
    _git(root, "reset", "--quiet", "main")
    _git(root, "add", "--all")
    _commit(root, "-m", "streams and locks")


def _commit(root: Path, *args: str) -> None:
    """A commit by the benchmark's own identity (none needs to be configured)."""
    _git(
        root,
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.com",
        "commit",
        "--quiet",
        *args,
    )


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> list[tuple[str, str, str, str]]:
    from reconciler.web import model, pages
    from reconciler.web.report import gather

    with tempfile.TemporaryDirectory(prefix="streamlock-bench-web-") as tmp:
        root = Path(tmp) / "repo"
        started = time.perf_counter()
        make_repository(root)
        print(
            f"web: repository generated in {time.perf_counter() - started:.1f} s", file=sys.stderr
        )
        # As a fresh clone first (no caches in .git/streamlock/), then again with the lock
        # cache that run left, then the parts in this process.
        shutil.rmtree(root / ".git" / "streamlock", ignore_errors=True)
        cold = _report(root, Path(tmp) / "site-cold")
        warm = _report(root, Path(tmp) / "site-warm")
        now = datetime.now(UTC).replace(microsecond=0)
        links = model.Links.parse("https://forge.example/org/config/commit/{sha}", None)
        start = time.perf_counter()
        inputs = gather(root, links, now)
        gather_s = time.perf_counter() - start
        start = time.perf_counter()
        site = model.build(inputs)
        build_s = time.perf_counter() - start
        assert site.tag_count == NAMESPACES * STREAMS_PER_NAMESPACE * 10, site.tag_count
        urls = pages.Urls(static=False)
        overview_runs, size = [], 0
        for _ in range(5):
            start = time.perf_counter()
            html = pages.overview(site, urls)
            overview_runs.append(time.perf_counter() - start)
            size = len(html.encode())
        filtered = []
        for _ in range(5):
            start = time.perf_counter()
            pages.overview(site, urls, namespace="ns07", state="due", page=1)
            filtered.append(time.perf_counter() - start)
        stream_runs = []
        for row in site.streams[:: len(site.streams) // 50]:
            start = time.perf_counter()
            pages.stream(site, urls, row)
            stream_runs.append(time.perf_counter() - start)
    overview_s = _median(overview_runs)
    stream_s = _median(stream_runs)
    tags = NAMESPACES * STREAMS_PER_NAMESPACE * 10
    return [
        (
            "web: read repository (5,000 streams, 50,000 tags)",
            f"{gather_s:.2f} s",
            "stream files, locks (cache warm), 10,000 reconciler commits",
            "no target",
        ),
        (
            "web: build the site",
            f"{build_s:.2f} s",
            f"{tags} tags; once per pass in the daemon",
            "no target",
        ),
        (
            "web: overview render",
            f"{overview_s * 1000:.1f} ms",
            f"median of 5; {size / 1024:.0f} KiB (100 streams a page); "
            f"filtered {_median(filtered) * 1000:.1f} ms",
            _verdict(overview_s < OVERVIEW_SECONDS and size < OVERVIEW_BYTES, "< 1 s, < 2 MB"),
        ),
        (
            "web: stream page render",
            f"{stream_s * 1000:.1f} ms",
            f"median of {len(stream_runs)} streams of 10 tags",
            _verdict(stream_s < STREAM_SECONDS, "< 100 ms"),
        ),
        _report_row("web: streamlock report --html, fresh clone", cold),
        _report_row("web: streamlock report --html, lock cache warm", warm),
    ]


def _report(root: Path, out: Path) -> tuple[float, float, int, int]:
    """Wall and CPU seconds (its forked parser included), exit code and pages of one
    ``streamlock report --html`` process."""
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "report",
        "--repo",
        str(root),
        "--html",
        str(out),
    ]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            print(err.read().decode("utf-8", "replace")[-2000:], file=sys.stderr)
    pages = sum(1 for _ in out.rglob("*.html")) if out.exists() else 0
    return elapsed, usage.ru_utime + usage.ru_stime, code, pages


def _report_row(label: str, run: tuple[float, float, int, int]) -> tuple[str, str, str, str]:
    elapsed, cpu, code, pages = run
    load = os.getloadavg()[0]
    cores = os.cpu_count()
    detail = f"exit {code}, {pages} pages; {cpu:.1f} s CPU; load average {load:.1f}, {cores} cores"
    return (
        label,
        f"{elapsed:.2f} s",
        detail,
        _verdict(elapsed < REPORT_SECONDS and code == 0, "< 30 s"),
    )


def _verdict(ok: bool, target: str) -> str:
    return f"{'PASS' if ok else 'MISS'} ({target})"


if __name__ == "__main__":
    for row in main():
        print("\t".join(row))
