"""A pass is never silent on a terminal, and its retry log lines name the image."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.test_reconcile import docker_tag, stream_file, streamlock

ROOT = Path(__file__).resolve().parents[2]


def slow_repo(config_repo, fault_proxy, registry, seeder, repo_name, delay: float):
    """A config repo whose one tag is served through a proxy that waits ``delay`` s first."""
    seeder.push_image(repo_name, "1.0", salt="slow")
    proxy = fault_proxy(registry)
    proxy.slow(delay, path="/manifests/", times=None)
    tags = docker_tag("test", f"{proxy.host}/{repo_name}:1.0")
    return config_repo({"streams/shop/app.yaml": stream_file("app", tags)}), proxy


def run_plan(repo_dir: Path, stderr_tty: bool) -> str:
    """streamlock plan as a process; its stderr (a pseudo-terminal or a pipe) as text."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "reconciler", "plan", "--repo", str(repo_dir)]
    if not stderr_tty:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        return done.stderr
    master, slave = os.openpty()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # the process closed its end
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
    finally:
        process.wait(timeout=30)
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_a_slow_registry_shows_progress_on_a_terminal(
    config_repo, fault_proxy, registry, seeder, repo_name
):
    """On a terminal, stderr shows tags resolved of the total and the registry waited on."""
    repo, proxy = slow_repo(config_repo, fault_proxy, registry, seeder, repo_name, 2.0)
    text = run_plan(repo.work, stderr_tty=True)
    assert "resolving tags: 0/1" in text, text
    assert f"waiting on {proxy.host}" in text


def test_no_progress_when_stderr_is_not_a_terminal(
    config_repo, fault_proxy, registry, seeder, repo_name
):
    """Not a terminal: no progress line, only the summary."""
    repo, _ = slow_repo(config_repo, fault_proxy, registry, seeder, repo_name, 1.0)
    text = run_plan(repo.work, stderr_tty=False)
    assert "resolving tags" not in text and "1 added" in text


def test_retry_log_lines_name_the_image(config_repo, fault_proxy, registry, seeder, repo_name):
    """A retried request logs which image it was resolving."""
    seeder.push_image(repo_name, "1.0", salt="retry")
    proxy = fault_proxy(registry)
    proxy.fail(503, path="/manifests/", times=1)
    ref = f"{proxy.host}/{repo_name}:1.0"
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", docker_tag("test", ref))})
    args = ["--log-format", "json", "--log-level", "info", "plan", "--repo", str(repo.work)]
    code, _, err = streamlock(*args)
    assert code == 2, err
    retries = [json.loads(line) for line in err.splitlines() if '"retrying"' in line]
    assert retries and retries[0]["image"] == ref
