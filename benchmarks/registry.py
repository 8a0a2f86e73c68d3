"""Registry benchmark: how close to the wire does streamlock resolve references, alone and in a
whole pass?

One machine, one local ``docker-registry`` serving 1,000 distinct images in 10 repositories,
each with its own config blob: resolving a tag costs two GETs (the manifest, then its config),
so the wire's pace for tags is half wrk's request rate over the same 2,000 paths. Both sides use
the same number of connections: the client's default concurrency (``RegistryConfig``).

Sides, run in alternating rounds (A B C D A B C D …) since the two cores are shared by client
and registry, each reported by its median:

- A, the wire: wrk GETting the 1,000 manifest paths (full Accept list) and the 1,000 config
  blob paths, with as many connections as the client's concurrency;
- B, the client in-process: a new ``RegistryClient`` resolving the 1,000 references cold;
- C, the whole pass: ``streamlock reconcile --no-push`` from process start to exit, in a fresh
  clone of a repository of 1,000 tags in 50 streams (one per image), 50 commits;
- D, the peer: ``skopeo inspect --no-tags`` (manifest and config, like streamlock) over a sample,
  one process per reference, as many at a time as the client's concurrency.

Then, once: the 1,000 references confirmed warm (the lock's digest known: one HEAD each), and
10,000 distinct references (20 repositories) resolved by a separate process: its peak RSS.

Targets (issues "registry" and "a whole pass at the wire's pace"): the whole pass and the client
>= 0.6 x the wire, the client >= 10 x skopeo; 10,000 refs < 150 MB.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks import _rounds

REFERENCES = 1000
REPOSITORIES = 10
STREAMS = 50  # the whole pass: 1,000 tags in 50 streams of 20
RSS_REFERENCES = 10_000
RSS_REPOSITORIES = 20
SKOPEO_SAMPLE = 48
ROUNDS = 5
WRK_SECONDS = 5
GETS_PER_TAG = 2  # the manifest and its config blob

WIRE_RATIO = 0.6
SKOPEO_RATIO = 10.0
RSS_MB = 150.0
ROOT = Path(__file__).resolve().parent.parent


def concurrency() -> int:
    """The client's connections per registry when the config names none."""
    from reconciler.config import RegistryConfig

    return RegistryConfig(host="").concurrency


def names(count: int, repositories: int, prefix: str) -> list[tuple[str, str]]:
    """``count`` distinct (repository, tag) pairs spread over ``repositories`` repositories."""
    per_repo = -(-count // repositories)
    return [(f"bench/{prefix}{n // per_repo}", f"t{n % per_repo:05d}") for n in range(count)]


def references(host: str, count: int, repositories: int, prefix: str) -> list[str]:
    """``count`` distinct pull specs spread over ``repositories`` repositories."""
    return [f"{host}/{repo}:{tag}" for repo, tag in names(count, repositories, prefix)]


def wrk_script(paths: Sequence[str], accept: str) -> str:
    """A wrk Lua script that rotates through ``paths``."""
    listing = ",\n".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{\n{listing}\n}}\n"
        "local i = 0\n"
        f'local headers = {{["Accept"] = {json.dumps(accept)}}}\n'
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i], headers)\n'
        "end\n"
    )


def wrk_args(connections: int) -> list[str]:
    return ["-c", str(connections), "-t", str(min(2, connections)), "-d", f"{WRK_SECONDS}s"]


def run_wrk(url: str, script: Path, connections: int) -> float:
    """Requests per second; every answer must be a 200."""
    result = subprocess.run(
        ["wrk", *wrk_args(connections), "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    if "Non-2xx" in result.stdout:
        raise RuntimeError(f"wrk saw errors:\n{result.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}")
    return float(match.group(1))


async def resolve_cold(refs: list[str]) -> tuple[float, float, int]:
    """(seconds, CPU seconds, failures) for a new client resolving ``refs``."""
    from reconciler.config import Config
    from reconciler.image import ImportFailure, ImportRequest
    from reconciler.registry import RegistryClient

    requests = [ImportRequest(ref) for ref in refs]
    async with RegistryClient(Config(), env={}) as client:
        started, cpu = time.perf_counter(), time.process_time()
        results = await client.resolve_all(requests)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    failures = [o for o in results.values() if isinstance(o, ImportFailure)]
    if failures:
        print(f"  first failure: {failures[0]}", file=sys.stderr)
    return elapsed, cpu, len(failures)


async def resolve_warm(refs: list[str]) -> tuple[float, int]:
    """(seconds, HEAD-only confirmations) for a client that knows every digest already."""
    from dataclasses import replace

    from reconciler.config import Config
    from reconciler.image import Image, ImportRequest
    from reconciler.registry import RegistryClient

    async with RegistryClient(Config(), env={}) as client:
        known = await client.resolve_all([ImportRequest(ref) for ref in refs])
    requests = []
    for ref in refs:
        image = known[(ref, "Legacy", "linux/amd64")]
        if not isinstance(image, Image):
            raise RuntimeError(f"{ref}: {image}")
        requests.append(replace(ImportRequest(ref), known=image))
    async with RegistryClient(Config(), env={}) as client:
        started = time.perf_counter()
        results = await client.resolve_all(requests)
        elapsed = time.perf_counter() - started
    confirmed = sum(1 for r in requests if results[r.key] is r.known)
    return elapsed, confirmed


def child_rss(host: str) -> None:
    """In a fresh process: resolve the 10,000 references, print seconds, failures and RSS."""
    refs = references(host, RSS_REFERENCES, RSS_REPOSITORIES, "rss")
    elapsed, _, failures = asyncio.run(resolve_cold(refs))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": elapsed, "failures": failures, "maxrss_kb": usage.ru_maxrss}))


def measure_rss(host: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.registry", "--child-rss", host],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_skopeo(refs: Sequence[str], parallel: int) -> float:
    """References per second, one ``skopeo inspect --no-tags`` process each (it fetches the
    manifest and the config, as streamlock does), ``parallel`` processes at a time."""
    home = tempfile.mkdtemp(prefix="streamlock-bench-skopeo-")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}

    def one(ref: str) -> None:
        subprocess.run(
            ["skopeo", "inspect", "--no-tags", "--tls-verify=false", f"docker://{ref}"],
            capture_output=True,
            check=True,
            timeout=60,
            env=env,
        )

    try:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            started = time.perf_counter()
            list(pool.map(one, refs))
            return len(refs) / (time.perf_counter() - started)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def stream_yaml(index: int, refs: Sequence[str]) -> str:
    """Stream ``app{index}``: one DockerImage tag per reference."""
    lines = [
        "apiVersion: image.openshift.io/v1",
        "kind: ImageStream",
        f"metadata:\n  name: app{index:02d}\n  namespace: bench",
        "spec:\n  tags:",
    ]
    for n, ref in enumerate(refs):
        lines.append(f"  - name: v{n}\n    from:\n      kind: DockerImage\n      name: {ref}")
    return "\n".join(lines) + "\n"


def streamlock_command() -> list[str]:
    """``streamlock`` as installed next to this interpreter, else ``python -m reconciler``."""
    script = Path(sys.executable).parent / "streamlock"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


@dataclass(frozen=True, slots=True)
class WholePass:
    seconds: float
    commits: int


def run_whole_pass(remote: Path, dest: Path) -> WholePass:
    """Clone ``remote`` fresh (untimed), then time ``streamlock reconcile --no-push`` in it from
    process start to exit; it must succeed and commit every stream."""
    from tests.fixtures.gitremote import git

    git(dest.parent, "clone", "--quiet", str(remote), str(dest))
    before = int(git(dest, "rev-list", "--count", "HEAD"))
    command = [*streamlock_command(), "reconcile", "--repo", str(dest), "--no-push"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"whole pass: exit {result.returncode}\n{result.stderr[-2000:]}")
    commits = int(git(dest, "rev-list", "--count", "HEAD")) - before
    if commits != STREAMS:
        raise RuntimeError(f"whole pass made {commits} commits, expected {STREAMS}")
    shutil.rmtree(dest, ignore_errors=True)
    return WholePass(elapsed, commits)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> list[tuple[str, str, str, str]]:
    from benchmarks import _seed
    from reconciler.manifest import ACCEPT
    from tests.fixtures.gitremote import make_config_repo
    from tests.fixtures.registry_server import RegistryServer

    for tool in ("wrk", "skopeo"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is required: run `make system-deps`")
    connections = concurrency()
    work = Path(tempfile.mkdtemp(prefix="streamlock-bench-registry-"))
    try:
        with RegistryServer(work / "registry") as server:
            host = server.host
            started = time.monotonic()
            wanted = names(REFERENCES, REPOSITORIES, "img")
            wanted += names(RSS_REFERENCES, RSS_REPOSITORIES, "rss")
            seeded = _seed.seed(server.storage_dir, server.url, wanted)[:REFERENCES]
            configs = len({image.config_digest for image in seeded})
            _rounds.log(
                f"seeded {len(wanted):,} distinct images ({configs:,} config blobs among the "
                f"first {REFERENCES:,}) into {host} in {time.monotonic() - started:.1f} s"
            )
            refs = [image.ref(host) for image in seeded]
            paths = []
            for image in seeded:
                paths.append(f"/v2/{image.repo}/manifests/{image.tag}")
                paths.append(f"/v2/{image.repo}/blobs/{image.config_digest}")
            script = work / "paths.lua"
            script.write_text(wrk_script(paths, ACCEPT))

            per_stream = REFERENCES // STREAMS
            files = {
                f"streams/bench/app{i:02d}.yaml": stream_yaml(
                    i, refs[i * per_stream : (i + 1) * per_stream]
                )
                for i in range(STREAMS)
            }
            repo = make_config_repo(work / "repo", files)
            clones = iter(range(ROUNDS))
            sample = refs[:: len(refs) // SKOPEO_SAMPLE][:SKOPEO_SAMPLE]

            def client() -> tuple[float, float]:
                elapsed, cpu, failures = asyncio.run(resolve_cold(refs))
                if failures:
                    raise RuntimeError(f"{failures} of {len(refs)} references failed")
                return elapsed, cpu

            results = _rounds.alternate(
                [
                    ("wrk", lambda: run_wrk(server.url, script, connections)),
                    ("client", client),
                    ("pass", lambda: run_whole_pass(repo.remote, work / f"pass{next(clones)}")),
                    ("skopeo", lambda: run_skopeo(sample, connections)),
                ],
                ROUNDS,
                show=_show,
            )
            warm_s, confirmed = asyncio.run(resolve_warm(refs))
            _rounds.log(f"streamlock warm {len(refs) / warm_s:.0f} ref/s")
            rss = measure_rss(host)
            _rounds.log(f"10,000 refs: {rss}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows(results, warm_s, confirmed, rss, connections, configs)


def _show(name: str, value: object) -> str:
    if isinstance(value, WholePass):
        return f"whole pass {value.seconds:.2f} s = {REFERENCES / value.seconds:,.0f} tag/s"
    if isinstance(value, tuple):
        return f"client {REFERENCES / value[0]:,.0f} ref/s"
    return f"{name} {value:,.1f}/s"


def rows(
    results: dict[str, list],
    warm_s: float,
    confirmed: int,
    rss: dict[str, float],
    connections: int,
    configs: int = REFERENCES,
) -> list[tuple[str, str, str, str]]:
    """The table: the whole pass against the wire first, each comparison naming its sides."""
    wire_rates: list[float] = results["wrk"]
    wire = _rounds.median(wire_rates)
    wire_tags = wire / GETS_PER_TAG
    pass_rates = [REFERENCES / run.seconds for run in results["pass"]]
    pass_rate = _rounds.median(pass_rates)
    client_rates = [REFERENCES / s for s, _ in results["client"]]
    client_rate = _rounds.median(client_rates)
    client_cpu = _rounds.median([c for _, c in results["client"]])
    skopeo_rates: list[float] = results["skopeo"]
    skopeo = _rounds.median(skopeo_rates)
    rss_mb = rss["maxrss_kb"] / 1024
    wrk = (
        f"wrk -c{connections} -t{min(2, connections)} -d{WRK_SECONDS}s over the same "
        f"{REFERENCES * GETS_PER_TAG:,} paths ({REFERENCES:,} manifests, {REFERENCES:,} config "
        f"blobs; {connections} connections = the client's concurrency)"
    )
    rounds = f"medians of {ROUNDS} alternating rounds (wire, client, whole pass, skopeo)"
    return [
        (
            f"whole pass vs wire: {REFERENCES:,} tags, {STREAMS} streams, distinct images",
            f"{pass_rate / wire_tags:.2f} x wire",
            f"A = streamlock reconcile --no-push, process start to exit, {REFERENCES:,} tags "
            f"in {STREAMS} streams ({configs:,} distinct config blobs), a fresh clone each round, "
            f"{STREAMS} commits; B = {wrk} ÷ "
            f"{GETS_PER_TAG} GETs a tag. A {pass_rate:,.0f} tag/s ({REFERENCES / pass_rate:.2f} "
            f"s) vs B {wire_tags:,.0f} tag/s; A {_rounds.listing(pass_rates)} tag/s; {rounds}",
            f"{verdict(pass_rate >= WIRE_RATIO * wire_tags)} (>= {WIRE_RATIO} x wire)",
        ),
        (
            f"wire: wrk GET, {connections} connections",
            f"{wire:,.0f} req/s",
            f"{wrk}: {wire_tags:,.0f} tag/s at {GETS_PER_TAG} GETs a tag; "
            f"{_rounds.listing(wire_rates)} req/s; {rounds}",
            "wire limit",
        ),
        (
            f"client vs wire: {REFERENCES:,} refs in-process, cold",
            f"{client_rate / wire_tags:.2f} x wire",
            f"A = a new RegistryClient resolving {REFERENCES:,} references ({GETS_PER_TAG} GETs "
            f"each, concurrency {connections}) in this process; B = {wrk}. A {client_rate:,.0f} "
            f"ref/s = {client_rate * GETS_PER_TAG:,.0f} req/s vs B {wire:,.0f} req/s; A "
            f"{_rounds.listing(client_rates)} ref/s; client CPU "
            f"{client_cpu / REFERENCES * 1e6:.0f} us/ref; {rounds}",
            f"{verdict(client_rate >= WIRE_RATIO * wire_tags)} (>= {WIRE_RATIO} x wire)",
        ),
        (
            f"client vs skopeo: {connections} at a time each",
            f"{client_rate / skopeo:,.1f} x skopeo",
            f"A = the client above; B = skopeo inspect --no-tags (manifest and config, like the "
            f"client) over {SKOPEO_SAMPLE} of the references, a process each, {connections} "
            f"processes at a time. A {client_rate:,.0f} ref/s vs B {skopeo:,.1f} ref/s; B "
            f"{_rounds.listing(skopeo_rates, '{:,.1f}')} ref/s; {rounds}",
            f"{verdict(client_rate >= SKOPEO_RATIO * skopeo)} (>= {SKOPEO_RATIO:.0f} x skopeo)",
        ),
        (
            f"client warm (HEAD), {REFERENCES:,} refs",
            f"{REFERENCES / warm_s:,.0f} ref/s",
            f"one run; {confirmed:,} confirmed without a GET",
            "info",
        ),
        (
            f"client {RSS_REFERENCES:,} distinct refs, own process",
            f"{rss_mb:,.0f} MB peak RSS",
            f"one run; {RSS_REFERENCES / rss['seconds']:,.0f} ref/s, {rss['failures']} failures",
            f"{verdict(rss_mb < RSS_MB and rss['failures'] == 0)} (< {RSS_MB:.0f} MB)",
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child-rss":
        child_rss(sys.argv[2])
    else:
        for row in main():
            print("\t".join(row))
