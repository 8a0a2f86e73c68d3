"""Registry client benchmark: how close to the wire does streamlock resolve references?

One run, one machine, one local ``docker-registry`` seeded with 1,000 distinct ``repo:tag``
images (one shared config and layer blob, manifests differing by an annotation):

- wrk GETting the same 1,000 manifest paths with the full Accept list: the wire limit (req/s);
- streamlock resolving the 1,000 references cold (new client, empty cache): ref/s; a cold
  reference costs one manifest GET plus the shared config blob once per client;
  wrk and streamlock alternate for five rounds and each side's median is compared, since the
  machine (two cores, shared by client and registry) is noisy;
- streamlock confirming the 1,000 references warm (the lock's digest known: one HEAD each);
- ``skopeo inspect --raw`` over a sample of the references, one process each: the peer baseline;
- 10,000 references (under 10,000 tags) resolved by a separate process: its peak RSS.

Targets (the registry issue): streamlock >= 0.6 x wrk and >= 10 x skopeo; 10,000 refs < 150 MB.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCES = 1000
REPOSITORIES = 10
RSS_REFERENCES = 10_000
RSS_REPOSITORIES = 20
SKOPEO_SAMPLE = 50
ROUNDS = 5
WRK_ARGS = ("-c", "16", "-t", "2", "-d", "5s")

WIRE_RATIO = 0.6
SKOPEO_RATIO = 10.0
RSS_MB = 150.0


def references(host: str, count: int, repositories: int, prefix: str) -> list[str]:
    """``count`` distinct pull specs spread over ``repositories`` repositories."""
    per_repo = -(-count // repositories)
    return [f"{host}/bench/{prefix}{n // per_repo}:t{n % per_repo:05d}" for n in range(count)]


def seed(server_url: str, refs: list[str], workers: int = 8) -> None:
    """Push every reference's tag through the registry API (bulk: shared blobs)."""
    from tests.fixtures.images import Seeder

    by_repo: dict[str, list[str]] = {}
    for ref in refs:
        name, tag = ref.rsplit(":", 1)
        by_repo.setdefault(name.split("/", 1)[1], []).append(tag)
    with Seeder(server_url) as seeder:
        for repo, tags in by_repo.items():
            seeder.push_tags_bulk(repo, tags, workers=workers)


def wrk_script(paths: list[str], accept: str) -> str:
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


def run_wrk(url: str, script: Path) -> float:
    """Requests per second; every answer must be a 200."""
    result = subprocess.run(
        ["wrk", *WRK_ARGS, "-s", str(script), url],
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


def run_skopeo(refs: list[str]) -> float:
    """References per second, one ``skopeo inspect --raw`` process each."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.mkdtemp()}
    started = time.perf_counter()
    for ref in refs:
        subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
            capture_output=True,
            check=True,
            timeout=60,
            env=env,
        )
    return len(refs) / (time.perf_counter() - started)


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


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> list[tuple[str, str, str, str]]:
    from reconciler.manifest import ACCEPT
    from tests.fixtures.registry_server import RegistryServer

    for tool in ("wrk", "skopeo"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is required: run `make system-deps`")
    work = Path(tempfile.mkdtemp(prefix="streamlock-bench-registry-"))
    try:
        with RegistryServer(work / "registry") as server:
            host = server.host
            refs = references(host, REFERENCES, REPOSITORIES, "img")
            rss_refs = references(host, RSS_REFERENCES, RSS_REPOSITORIES, "rss")
            log(f"seeding {len(refs) + len(rss_refs)} tags into {host}")
            started = time.monotonic()
            seed(server.url, refs + rss_refs)
            log(f"seeded in {time.monotonic() - started:.0f} s")

            script = work / "paths.lua"
            paths = []
            for ref in refs:
                name, tag = ref.split("/", 1)[1].rsplit(":", 1)
                paths.append(f"/v2/{name}/manifests/{tag}")
            script.write_text(wrk_script(paths, ACCEPT))

            # Interleaved, so drift on a shared machine hits both sides alike.
            wrk_rates, rounds = [], []
            for _ in range(ROUNDS):
                wrk_rates.append(run_wrk(server.url, script))
                log(f"wrk {wrk_rates[-1]:.0f} req/s")
                elapsed, cpu, failures = asyncio.run(resolve_cold(refs))
                if failures:
                    raise RuntimeError(f"{failures} of {len(refs)} references failed")
                rounds.append((elapsed, cpu))
                log(f"streamlock cold {len(refs) / elapsed:.0f} ref/s")
            warm_s, confirmed = asyncio.run(resolve_warm(refs))
            log(f"streamlock warm {len(refs) / warm_s:.0f} ref/s")
            skopeo = run_skopeo(refs[:SKOPEO_SAMPLE])
            log(f"skopeo {skopeo:.1f} ref/s")
            rss = measure_rss(host)
            log(f"10,000 refs: {rss}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    wire = statistics.median(wrk_rates)
    median_s = statistics.median(s for s, _ in rounds)
    median_cpu = statistics.median(c for _, c in rounds)
    cold = len(refs) / median_s
    warm = len(refs) / warm_s
    rss_mb = rss["maxrss_kb"] / 1024
    rss_rate = RSS_REFERENCES / rss["seconds"]
    all_rounds = ", ".join(f"{len(refs) / s:.0f}" for s, _ in rounds)
    return [
        (
            "wrk GET manifests (-c16 -t2 5s)",
            f"{wire:,.0f} req/s",
            "rounds " + ", ".join(f"{r:,.0f}" for r in wrk_rates) + " (median)",
            "wire limit",
        ),
        (
            f"streamlock cold, {len(refs):,} refs",
            f"{cold:,.0f} ref/s",
            f"{cold / wire:.2f} x wrk; rounds {all_rounds} (median); "
            f"client CPU {median_cpu / len(refs) * 1e6:.0f} us/ref",
            f"{verdict(cold >= WIRE_RATIO * wire)} (>= {WIRE_RATIO} x wrk)",
        ),
        (
            f"streamlock warm (HEAD), {len(refs):,} refs",
            f"{warm:,.0f} ref/s",
            f"{confirmed:,} confirmed without a GET",
            "info",
        ),
        (
            f"skopeo inspect --raw, {SKOPEO_SAMPLE} refs",
            f"{skopeo:,.1f} ref/s",
            f"streamlock cold = {cold / skopeo:,.0f} x skopeo",
            f"{verdict(cold >= SKOPEO_RATIO * skopeo)} (>= {SKOPEO_RATIO:.0f} x skopeo)",
        ),
        (
            f"streamlock {RSS_REFERENCES:,} refs, own process",
            f"{rss_mb:,.0f} MB peak RSS",
            f"{rss_rate:,.0f} ref/s, {rss['failures']} failures",
            f"{verdict(rss_mb < RSS_MB and rss['failures'] == 0)} (< {RSS_MB:.0f} MB)",
        ),
    ]


def log(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child-rss":
        child_rss(sys.argv[2])
    else:
        for row in main():
            print("\t".join(row))
