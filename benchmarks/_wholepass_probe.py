"""Private probe: a whole cold ``streamlock reconcile --no-push`` against wrk on the same paths.

1,000 tags in 50 streams, each tag its own image with its own config blob (two GETs per tag).
wrk GETs the same 2,000 manifest and blob paths with as many connections as the client's
concurrency (8 per registry by default). Rounds alternate; medians are compared.

    PYTHONPATH=$PWD python -m benchmarks._wholepass_probe [--rounds 5] [--profile out.prof]
        [--count-git] [--variants asyncio,uvloop,before=/path/to/another/checkout]

Not part of ``make bench`` (benchmarks/engine.py and registry.py own the official table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STREAMS = 50
TAGS_PER_STREAM = 20
REPOSITORIES = 10
CONCURRENCY = 8  # reconciler.registry.endpoints.DEFAULT_CONCURRENCY
WRK_SECONDS = "5s"


def seed(server_url: str) -> list[tuple[str, str, str]]:
    """Push every image (own config blob each); ``(repository, tag, config digest)``."""
    import httpx

    from tests.fixtures.images import (
        SHARED_LAYER_CONTENT,
        make_config,
        make_layer,
        make_manifest,
        push_blob,
        put_manifest,
    )

    layer = make_layer(SHARED_LAYER_CONTENT)
    images = []
    for n in range(STREAMS * TAGS_PER_STREAM):
        images.append((f"bench/img{n % REPOSITORIES}", f"t{n:04d}", n))
    with httpx.Client(timeout=60) as client:
        for r in range(REPOSITORIES):
            push_blob(client, server_url, f"bench/img{r}", layer.blob)

        def one(item: tuple[str, str, int]) -> tuple[str, str, str]:
            repo, tag, n = item
            config = make_config(
                "linux/amd64",
                created="2026-01-01T00:00:00Z",
                labels={"n": str(n)},
                layer=layer,
                salt=f"img{n}",
            )
            config_digest = push_blob(client, server_url, repo, config)
            put_manifest(client, server_url, repo, tag, make_manifest(config, [layer]))
            return repo, tag, config_digest

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, images))


def stream_files(host: str, images: list[tuple[str, str, str]]) -> dict[str, str]:
    files = {}
    for s in range(STREAMS):
        lines = [
            "apiVersion: image.openshift.io/v1",
            "kind: ImageStream",
            f"metadata:\n  name: app{s:02d}\n  namespace: bench",
            "spec:\n  tags:",
        ]
        for t in range(TAGS_PER_STREAM):
            repo, tag, _ = images[s * TAGS_PER_STREAM + t]
            lines.append(f"  - name: v{t}\n    from:\n      kind: DockerImage")
            lines.append(f"      name: {host}/{repo}:{tag}")
        files[f"streams/bench/app{s:02d}.yaml"] = "\n".join(lines) + "\n"
    return files


def wrk_script(paths: list[str], accept: str) -> str:
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
    result = subprocess.run(
        ["wrk", "-c", str(CONCURRENCY), "-t", "2", "-d", WRK_SECONDS, "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    if "Non-2xx" in result.stdout:
        raise RuntimeError(result.stdout)
    for line in result.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(result.stdout)


def reset_repo(work: Path, base: str) -> None:
    subprocess.run(["git", "reset", "--quiet", "--hard", base], cwd=work, check=True)
    subprocess.run(["git", "clean", "-fdq"], cwd=work, check=True)
    shutil.rmtree(work / ".git" / "streamlock", ignore_errors=True)


# Variants of the process: the CLI as installed, and under uvloop's event loop.
VARIANTS = {
    "asyncio": ["-m", "reconciler"],
    "uvloop": [
        "-c",
        "import asyncio, sys, uvloop\n"
        "asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())\n"
        "from reconciler.cli import main\n"
        "main(sys.argv[1:])\n",
    ],
}


def run_pass(
    work: Path, profile: str | None, extra_env: dict[str, str], variant: str = "asyncio"
) -> tuple[float, int]:
    """Seconds from process start to exit, and the number of git processes it ran."""
    log = work.parent / "git-calls.log"
    log.unlink(missing_ok=True)
    prefix = [sys.executable]
    if profile:
        prefix += ["-m", "cProfile", "-o", profile]
    args = ["reconcile", "--repo", str(work), "--no-push", "-o", "json"]
    # "before=/path/to/checkout": the same pass with another checkout's code on PYTHONPATH.
    name, _, checkout = variant.partition("=")
    cmd = [*prefix, *VARIANTS["asyncio" if checkout else name], *args]
    env = {**os.environ, **extra_env, "GIT_PROBE_LOG": str(log)}
    if checkout:
        env["PYTHONPATH"] = checkout
    start = time.perf_counter()
    # Not run from the checkout: "-m reconciler" would import the code there, not PYTHONPATH's.
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=600, check=False, cwd=work.parent
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr[-3000:]}")
    calls = len(log.read_text().splitlines()) if log.exists() else -1
    return elapsed, calls


COUNTING_GIT = """#!/bin/sh
echo "$*" >> "$GIT_PROBE_LOG"
exec "$REAL_GIT" "$@"
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", default=None, help="cProfile output of one extra pass")
    parser.add_argument("--count-git", action="store_true", help="log git processes")
    parser.add_argument(
        "--variants",
        default="asyncio",
        help="comma-separated: asyncio, uvloop, or NAME=CHECKOUT (another checkout's code)",
    )
    args = parser.parse_args()

    from reconciler.manifest import ACCEPT
    from tests.fixtures.gitremote import make_config_repo
    from tests.fixtures.registry_server import RegistryServer

    # An installed package has its bytecode; a checkout under PYTHONDONTWRITEBYTECODE would
    # compile every module in every pass (about 0.2 s here), which is not what users run.
    here = str(Path(__file__).resolve().parents[1] / "reconciler")
    subprocess.run([sys.executable, "-m", "compileall", "-q", here], check=True)
    with tempfile.TemporaryDirectory(prefix="streamlock-wholepass-") as tmp:
        root = Path(tmp)
        extra_env: dict[str, str] = {}
        if args.count_git:
            real = shutil.which("git")
            assert real is not None
            bin_dir = root / "bin"
            bin_dir.mkdir()
            (bin_dir / "git").write_text(COUNTING_GIT)
            (bin_dir / "git").chmod(0o755)
            extra_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_GIT": real}
        with RegistryServer(root / "registry") as server:
            started = time.perf_counter()
            images = seed(server.url)
            print(f"seeded {len(images)} images in {time.perf_counter() - started:.1f} s")
            repo = make_config_repo(root / "repo", stream_files(server.host, images))
            base = subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=repo.work,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            # Interleaved, so that any stretch of wrk's run has the client's mix: one manifest
            # and one blob per tag (a blob GET costs the registry about twice a manifest GET).
            paths = [
                path
                for r, t, d in images
                for path in (f"/v2/{r}/manifests/{t}", f"/v2/{r}/blobs/{d}")
            ]
            script = root / "paths.lua"
            script.write_text(wrk_script(paths, ACCEPT))
            run_wrk(server.url, script)  # warm the registry's caches
            reset_repo(repo.work, base)
            run_pass(repo.work, None, extra_env)  # warm the page cache
            variants = args.variants.split(",")
            wrk_rates: list[float] = []
            seconds: dict[str, list[float]] = {v: [] for v in variants}
            for n in range(args.rounds):
                wrk_rates.append(run_wrk(server.url, script))
                for variant in variants if n % 2 == 0 else variants[::-1]:
                    reset_repo(repo.work, base)
                    elapsed, count = run_pass(repo.work, None, extra_env, variant)
                    seconds[variant].append(elapsed)
                    rate = len(paths) / elapsed
                    print(
                        f"round {n + 1} {variant}: wrk {wrk_rates[-1]:.0f} req/s; pass "
                        f"{elapsed:.2f} s = {rate:.0f} req/s ({rate / wrk_rates[-1]:.2f}); "
                        f"git processes {count}; load {os.getloadavg()[0]:.2f}"
                    )
            wire = statistics.median(wrk_rates)
            for variant in variants:
                median = statistics.median(seconds[variant])
                whole = len(paths) / median
                print(
                    f"median {variant}: wrk -c {CONCURRENCY} {wire:.0f} req/s; whole pass "
                    f"{median:.2f} s = {whole:.0f} req/s; ratio {whole / wire:.2f}; "
                    f"load {os.getloadavg()}"
                )
            if args.profile:
                reset_repo(repo.work, base)
                run_pass(repo.work, args.profile, extra_env)
                print(f"profile in {args.profile}")


if __name__ == "__main__":
    main()
