"""The cases of ``make trust``: each sets up a repository, does what an attacker or an unlucky
operator would, and leaves the judging to the generic checkers in ``harness.finish``."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import resource
import signal
import subprocess
import time
from pathlib import Path

from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.gitremote import BRANCH, git
from tests.fixtures.images import (
    Seeder,
    build_image,
    make_layer,
    make_manifest,
    push_blob,
    put_manifest,
    sha256,
)
from tests.fixtures.registry_server import REGISTRY_BINARY, RegistryServer, _answers_as_registry
from tests.trust.harness import (
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    Case,
    Docker,
    Follow,
    Run,
    blob_id,
    case,
    check_converged,
    check_exactly_once,
    check_stuck,
    kill_group,
)
from tests.trust.hostile import HostileRegistry

# The per-tag and per-pass budget of registry work (docs/config.md `timeouts`); one line to change.
BUDGET_CONFIG = "timeouts: {tag: 5s, pass: 60s}\n"
TRICKLE_DELAY = 60.0  # each answer of the trickling repository waits this long
TRICKLE_BOUND = 40.0  # the pass must end by itself before this
KILL_PASSES = 40
PARALLEL_ROUNDS = 8
GIT_TIMEOUT = 3  # STREAMLOCK_GIT_TIMEOUT for the slow-hook case
HOOK_SLEEP = 8
LONG_NAME = "s" + "x" * 249  # 250 characters: a valid DNS-1123 subdomain, too long for a file
HINT_RE = re.compile(r"git (push|pull|rebase|reset|log|cherry-pick|branch|fetch|status)\b")


def repo_of(c: Case, name: str) -> str:
    """A registry repository unique to the case."""
    return f"trust/{re.sub(r'[^a-z0-9]+', '-', c.name.lower())}/{name}"


def reconciled(c: Case, run: Run) -> None:
    """Note how a run ended, briefly."""
    c.note(f"run: {run.brief()}")


def person_commit(c: Case, where: Path, name: str, push: bool = True) -> str:
    """A person's own commit (a notes file) in ``where``; pushed after a rebase if asked."""
    (where / "notes").mkdir(exist_ok=True)
    (where / "notes" / f"{name}.txt").write_text(name + "\n")
    git(where, "add", "notes")
    git(where, "commit", "--quiet", "-m", f"notes: {name}")
    sha = git(where, "rev-parse", "HEAD").strip()
    if push:
        for _ in range(5):
            if git(where, "push", "--quiet", "origin", f"HEAD:{BRANCH}", check=False) == "":
                pushed = git(where, "ls-remote", "origin", BRANCH).split()[0]
                if git(where, "merge-base", "--is-ancestor", sha, pushed, check=False) == "":
                    break
            git(where, "pull", "--quiet", "--rebase", "origin", BRANCH, check=False)
    return sha


def persons_commits_kept(c: Case, subjects: list[str]) -> None:
    """Each person's commit (by subject) is still on the remote; each missing one is lost."""
    assert c.repo is not None
    log = git(c.repo.remote, "log", "--format=%s", BRANCH).splitlines()
    for subject in subjects:
        if subject not in log:
            c.counts.lost += 1
            c.note(f"person's commit lost: {subject}")


def hook(c: Case, name: str, script: str) -> Path:
    """Install a hook on the bare remote."""
    assert c.repo is not None
    path = c.repo.remote / "hooks" / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def two_streams(c: Case) -> None:
    """shop/app (a, latest → a) and shop/web (b): pushed and pinned by a first pass."""
    a, b = repo_of(c, "a"), repo_of(c, "b")
    c.push(a, "1", salt=f"{c.name}-a0")
    c.push(b, "1", salt=f"{c.name}-b0")
    c.make_repo(
        [
            c.stream("shop", "app", [Docker("a", a, "1"), Follow("latest", "a")]),
            c.stream("shop", "web", [Docker("b", b, "1")]),
        ]
    )
    first = c.streamlock("reconcile")
    if first.code != 0:
        c.problem(f"first pass failed: {first.brief()}")


def move_all(c: Case, round_: str) -> None:
    """Push a new image for every DockerImage tag of the case."""
    for repo, tag in sorted(set(c.docker.values())):
        c.push(repo, tag, salt=f"{c.name}-{repo}-{round_}")


# --- findings -----------------------------------------------------------------------------------


@case("deep-json-config", "60 KB of '[' as one image's config blob, beside good tags")
def deep_json(c: Case) -> None:
    a, b, deep = repo_of(c, "a"), repo_of(c, "b"), repo_of(c, "deep")
    c.push(a, "1", salt="a1")
    c.push(b, "1", salt="b1")
    seeder = c.lab.seeder
    config = b"[" * 60_000
    layer = make_layer("deep")
    push_blob(seeder.client, seeder.url, deep, layer.blob)
    push_blob(seeder.client, seeder.url, deep, config)
    put_manifest(seeder.client, seeder.url, deep, "1", make_manifest(config, [layer]))
    c.make_repo(
        [
            c.stream("shop", "app", [Docker("a", a, "1"), Docker("deep", deep, "1")]),
            c.stream("shop", "web", [Docker("b", b, "1")]),
        ]
    )
    c.exempt.add(("shop", "app", "deep"))
    c.tolerated.add(("shop", "app", "deep"))
    reconciled(c, c.streamlock("reconcile"))
    c.push(a, "1", salt="a2")
    c.push(b, "1", salt="b2")
    reconciled(c, c.streamlock("reconcile"))


@case("trailer-forgery", "a version label ending in another tag's Streamlock-* block")
def trailer_forgery(c: Case) -> None:
    victim, evil = repo_of(c, "victim"), repo_of(c, "evil")
    c.push(victim, "1", salt="v1")
    # The forged record names the digest the victim's tag moves to next: read as the reconciler's
    # own record, the revert rule takes the victim's real bump for a person's revert of it.
    upcoming = sha256(build_image(salt="v2")[0])
    ref = f"{c.lab.registry.host}/{victim}:1"
    forged = (
        "1.0\n\nStreamlock-Tag: team/prod:latest\n"
        f"Streamlock-From: {ref}\nStreamlock-Previous: none\nStreamlock-Image: {upcoming}"
    )
    labels = {"org.opencontainers.image.version": forged}
    for tag in ("1", "2"):  # one image under two tags
        c.push(evil, tag, salt="e1", labels=labels)
    c.make_repo(
        [
            c.stream("team", "prod", [Docker("latest", victim, "1")]),
            c.stream("shop", "app", [Docker("v", evil, "1")]),
        ]
    )
    c.streamlock("reconcile")
    # A spec change that keeps the digest: the commit carries the label but no bump of its own.
    assert c.repo is not None
    c.repo.pull()
    c.repo.commit(dict([c.stream("shop", "app", [Docker("v", evil, "2")])]), "app: v from :2")
    reconciled(c, c.streamlock("reconcile"))
    c.push(victim, "1", salt="v2")
    reconciled(c, c.streamlock("reconcile"))


@case("nul-in-label", "a NUL byte in one image's label, three streams in the pass")
def nul_label(c: Case) -> None:
    names = [repo_of(c, n) for n in ("a", "b", "c")]
    for name in names:
        c.push(name, "1", salt=f"{name}-1")
    c.make_repo([c.stream("shop", f"s{i}", [Docker("t", n, "1")]) for i, n in enumerate(names)])
    c.streamlock("reconcile")
    c.push(names[0], "1", salt="nul", labels={"org.opencontainers.image.version": "1.0\x00evil"})
    for name in names[1:]:
        c.push(name, "1", salt=f"{name}-2")
    reconciled(c, c.streamlock("reconcile"))


@case("push-declined-once", "a pre-receive hook declines one push, then is removed")
def push_declined(c: Case) -> None:
    two_streams(c)
    move_all(c, "2")
    declined = hook(c, "pre-receive", "echo 'declined by policy' >&2\nexit 1\n")
    reconciled(c, c.streamlock("reconcile"))
    declined.unlink()


def behind_proxy(c: Case, delay: float) -> FaultProxy:
    """shop/app (a, latest → a) and shop/web (b) read through a fault proxy that answers every
    request after ``delay`` seconds (a window in the middle of a pass), pinned by a first pass."""
    proxy = FaultProxy(c.lab.registry).start()
    c.cleanups.append(proxy.stop)
    a, b = repo_of(c, "a"), repo_of(c, "b")
    c.push(a, "1", salt=f"{c.name}-a0")
    c.push(b, "1", salt=f"{c.name}-b0")
    c.make_repo(
        [
            c.stream(
                "shop", "app", [Docker("a", a, "1", ref_host=proxy.host), Follow("latest", "a")]
            ),
            c.stream("shop", "web", [Docker("b", b, "1", ref_host=proxy.host)]),
        ],
        hosts=[proxy.host],
    )
    c.streamlock("reconcile")
    move_all(c, "2")
    proxy.clear_requests()
    proxy.slow(delay, path="/manifests/", times=None)
    return proxy


def when_registry_asked(c: Case, proxy: FaultProxy, proc: subprocess.Popen[bytes]) -> bool:
    """Wait (bounded) until the pass asks the registry: it has fetched and is resolving."""
    deadline = time.monotonic() + 30
    while proxy.count() == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proxy.count() > 0


@case("remote-moved-away", "the bare remote moved away mid-pass (after its fetch), then back")
def remote_moved(c: Case) -> None:
    proxy = behind_proxy(c, 1.0)
    assert c.repo is not None
    away = c.repo.remote.with_name("remote.away")
    started = time.monotonic()
    proc = c.popen("reconcile")
    moved = when_registry_asked(c, proxy, proc)
    if moved:
        c.repo.remote.rename(away)
    try:
        reconciled(c, c.collect(proc, ("reconcile", "(remote away)"), started, 60))
    finally:
        if moved:
            away.rename(c.repo.remote)
    proxy.clear_faults()


@case("person-unpushed-commit", "a person's own unpushed commit in the checkout, then reconcile")
def person_unpushed(c: Case) -> None:
    two_streams(c)
    move_all(c, "2")
    sha = person_commit(c, c.work, "mine", push=False)

    def refused_with_hint(run: Run) -> bool:
        kept = git(c.work, "merge-base", "--is-ancestor", sha, "HEAD", check=False) == ""
        if not kept:
            return False
        return run.code not in (0, None) and bool(HINT_RE.search(run.output))

    run = c.streamlock("reconcile")
    if git(c.work, "merge-base", "--is-ancestor", sha, "HEAD", check=False) != "":
        c.counts.lost += 1
        c.note("the person's unpushed commit was dropped")
    elif run.code == 0:
        c.problem("exit 0 with a person's unpushed commit in the way")
    elif not HINT_RE.search(run.output):
        c.problem(f"refused without naming git commands: {run.brief()}")
    else:
        c.note("refused with a git hint, commit kept (expected)")
    check_stuck(c, accept=refused_with_hint)
    c.check_stuck = False


@case("sigkill-random", f"{KILL_PASSES} passes SIGKILLed at random moments, images moving")
def sigkill(c: Case) -> None:
    two_streams(c)
    whole = c.runs[-1].seconds  # how long an unkilled pass takes here
    rng = random.Random(c.lab.seed)
    person = c.clone("person")
    subjects = []
    killed = 0
    for index in range(KILL_PASSES):
        for repo, tag in sorted(set(c.docker.values())):
            if rng.random() < 0.6:
                c.push(repo, tag, salt=f"{repo}-k{index}")
        if index % 10 == 5:
            git(person, "pull", "--quiet", "--rebase", "origin", BRANCH, check=False)
            person_commit(c, person, f"person-{index}")
            subjects.append(f"notes: person-{index}")
        started = time.monotonic()
        proc = c.popen("reconcile")
        deadline = started + rng.uniform(0.05, max(0.3, whole * 1.2))
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            kill_group(proc)
            killed += 1
        c.collect(proc, ("reconcile", "(killed)"), started, 30)
    c.note(f"{killed}/{KILL_PASSES} runs killed")
    c.check_stuck = False
    check_stuck(c)
    check_converged(c)
    check_exactly_once(c)
    c.check_converged = c.check_once = False
    persons_commits_kept(c, subjects)


@case("hand-edited-lock", "locks edited by hand: another stream's metadata; a non-digest image")
def hand_edited_lock(c: Case) -> None:
    names = {n: repo_of(c, n) for n in ("a", "b", "c", "d")}
    for n, repo in names.items():
        c.push(repo, "1", salt=f"{n}1")
    c.make_repo([c.stream("shop", n, [Docker("t", repo, "1")]) for n, repo in names.items()])
    c.streamlock("reconcile")
    c.repo.pull()  # type: ignore[union-attr]
    lock_a = c.work / "locks/shop/a.lock.yaml"
    lock_c = c.work / "locks/shop/c.lock.yaml"
    text_a = lock_a.read_text()
    text_a = re.sub(r"(?m)^(\s*name:\s*)a\s*$", r"\1b", text_a, count=1)
    text_a = re.sub(r"name: a([,}])", r"name: b\1", text_a, count=1)
    lock_a.write_text(text_a)
    lock_c.write_text(re.sub(r"image: sha256:[0-9a-f]{64}", "image: latest", lock_c.read_text()))
    git(c.work, "commit", "--quiet", "-am", "hand edit of two locks")
    git(c.work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
    for n, repo in names.items():
        c.push(repo, "1", salt=f"{n}2")
    for broken in ("a", "c"):
        c.exempt.add(("shop", broken, "t"))
        c.tolerated.add(("shop", broken, "t"))
    reconciled(c, c.streamlock("reconcile"))


@case("long-stream-name", "a 250-character stream name beside a normal stream")
def long_name(c: Case) -> None:
    ok, long = repo_of(c, "ok"), repo_of(c, "long")
    c.push(ok, "1", salt="ok1")
    c.push(long, "1", salt="long1")
    long_stream = c.stream("shop", LONG_NAME, [Docker("t", long, "1")])[1]
    c.make_repo(
        [c.stream("shop", "ok", [Docker("t", ok, "1")]), ("streams/shop/long.yaml", long_stream)]
    )
    c.exempt.add(("shop", LONG_NAME, "t"))
    c.tolerated.add(("shop", LONG_NAME, "t"))
    validate = c.streamlock("validate")
    run = c.streamlock("reconcile")
    reconciled(c, run)
    for label, r in (("validate", validate), ("reconcile", run)):
        if "Traceback (most recent call last)" in r.output:
            c.problem(f"{label} printed a traceback")
    if validate.code == 0:
        c.problem("validate accepted a name the file system cannot hold")
    c.push(ok, "1", salt="ok2")


@case("trickling-registry", "one repository answers after 60 s; per-tag budget 5 s")
def trickle(c: Case) -> None:
    fast, slow = repo_of(c, "fast"), repo_of(c, "slow")
    c.push(fast, "1", salt="f1")
    c.push(slow, "1", salt="s1")
    proxy = FaultProxy(c.lab.registry).start()
    c.cleanups.append(proxy.stop)
    c.make_repo(
        [
            c.stream(
                "shop",
                "app",
                [
                    Docker("fast", fast, "1", ref_host=proxy.host),
                    Docker("slow", slow, "1", ref_host=proxy.host),
                ],
            ),
            c.stream("shop", "web", [Docker("direct", fast, "1")]),
        ],
        hosts=[proxy.host],
        config_extra=BUDGET_CONFIG,
    )
    proxy.slow(TRICKLE_DELAY, path=f"^/v2/{re.escape(slow)}/", times=None)
    c.exempt.add(("shop", "app", "slow"))
    c.tolerated.add(("shop", "app", "slow"))
    run = c.streamlock("reconcile", timeout=TRICKLE_BOUND)
    reconciled(c, run)
    if run.code is None:
        c.problem(f"the pass did not end within {TRICKLE_BOUND:.0f}s")
    else:
        c.note(f"pass took {run.seconds:.0f}s")
    proxy.clear_faults()
    c.exempt.clear()
    c.tolerated.clear()


@case(
    "two-runs-one-checkout",
    f"two one-shot reconciles started together on one checkout, {PARALLEL_ROUNDS} rounds",
)
def two_at_once(c: Case) -> None:
    two_streams(c)
    whole = c.runs[-1].seconds
    rng = random.Random(c.lab.seed + 1)
    for round_ in range(PARALLEL_ROUNDS):
        move_all(c, f"r{round_}")
        started = time.monotonic()
        first = c.popen("reconcile")
        # Even rounds start both at once; odd ones the second somewhere inside the first's pass.
        if round_ % 2:
            time.sleep(rng.uniform(0.0, whole * 0.9))
        second = c.popen("reconcile")
        for proc in (first, second):
            c.collect(proc, ("reconcile", "(parallel)"), started, 90)
    c.note("; ".join(sorted({r.brief()[:40] for r in c.runs[-2 * PARALLEL_ROUNDS :]})))


@case(
    "validate-github-newline", "validate --format github/gitlab on a file name with \\n::set-output"
)
def validate_newline(c: Case) -> None:
    evil = "streams/shop/x\n::set-output name=pwned::1.yaml"
    c.make_repo([], files={evil: "kind: Nonsense\n"})
    c.check_stuck = c.check_converged = c.check_once = False
    run = c.streamlock("validate", "--format", "github")
    raw = [
        line
        for line in run.stdout.splitlines()
        if line.startswith("::") and not line.startswith("::error ")
    ]
    if raw:
        c.problem(f"raw workflow command in output: {raw[0][:50]!r}")
    if run.code == 0:
        c.problem("validate accepted the broken file")
    gitlab = c.streamlock("validate", "--format", "gitlab")
    try:
        json.loads(gitlab.stdout)
    except ValueError:
        c.problem("--format gitlab is not JSON")


@case(
    "git-timeout-slow-hook",
    f"STREAMLOCK_GIT_TIMEOUT={GIT_TIMEOUT}, pre-receive sleeps {HOOK_SLEEP}s",
)
def git_timeout(c: Case) -> None:
    two_streams(c)
    move_all(c, "2")
    done = c.dir / "hook-done"
    slow = hook(c, "pre-receive", f"sleep {HOOK_SLEEP}\ntouch '{done}'\nexit 0\n")
    c.env["STREAMLOCK_GIT_TIMEOUT"] = str(GIT_TIMEOUT)
    run = c.streamlock("reconcile")
    reconciled(c, run)
    if run.seconds >= HOOK_SLEEP and run.code == 0:
        c.problem(f"STREAMLOCK_GIT_TIMEOUT ignored: the push waited {run.seconds:.0f}s")
    deadline = time.monotonic() + HOOK_SLEEP + 15
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    slow.unlink()


@case("userinfo-in-reference", "user:SECRET@host/… as an image reference, beside a good tag")
def userinfo(c: Case) -> None:
    secret = "userinfo-SECRET-9d2c"
    good, other = repo_of(c, "good"), repo_of(c, "other")
    c.push(good, "1", salt="g1")
    c.push(other, "1", salt="o1")
    host = f"user:{secret}@{c.lab.registry.host}"
    path, text = c.stream("shop", "app", [Docker("creds", other, "1", ref_host=host)])
    c.make_repo([(path, text), c.stream("shop", "web", [Docker("good", good, "1")])])
    c.secrets.add(secret)
    c.allowed_blobs.add(blob_id(text))  # the person's own stream file holds it
    c.allowed_paths.add(path)
    c.exempt.add(("shop", "app", "creds"))
    c.tolerated.add(("shop", "app", "creds"))
    reconciled(c, c.streamlock("reconcile"))
    c.streamlock("validate")
    c.streamlock("plan")


@case("no-upstream", "a branch without upstream: reconcile must fail with a hint; --no-push works")
def no_upstream(c: Case) -> None:
    two_streams(c)
    move_all(c, "2")
    git(c.work, "branch", "--unset-upstream")
    run = c.streamlock("reconcile")
    if run.code == 0:
        c.problem("reconcile reported success without an upstream to push to")
    elif "upstream" not in run.output.lower():
        c.problem(f"no upstream hint: {run.brief()}")
    local = c.streamlock("reconcile", "--no-push")
    if local.code != 0:
        c.problem(f"--no-push failed: {local.brief()}")
    git(c.work, "branch", f"--set-upstream-to=origin/{BRANCH}")


# --- faults of the environment --------------------------------------------------------------------


def restart_same_port(server: RegistryServer) -> None:
    """Start the registry again on its old port (its config file still names it)."""
    log = server.log_file.open("ab")
    try:
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(server.root / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    finally:
        log.close()
    server._process = process  # the fixture has no public restart; same object, same port
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _answers_as_registry(server.url + "/v2/", None):
            return
        time.sleep(0.1)
    raise RuntimeError("the registry did not come back")


@case("registry-killed-mid-pass", "docker-registry SIGKILLed during a 40-tag pass, restarted")
def registry_killed(c: Case) -> None:
    server = RegistryServer(c.dir / "registry", htpasswd={REGISTRY_USER: REGISTRY_PASSWORD})
    server.start()
    c.cleanups.append(server.cleanup)
    seeder = Seeder.for_server(server)
    c.cleanups.append(seeder.close)
    proxy = FaultProxy(server).start()  # only to see when the pass starts asking
    c.cleanups.append(proxy.stop)
    streams = []
    for s in range(4):
        repo = repo_of(c, f"s{s}")
        c.seeders[repo] = seeder
        tags = [f"t{t}" for t in range(10)]
        for tag, digest in seeder.push_tags_bulk(
            repo, tags, created="2026-11-01T00:00:00Z"
        ).items():
            c.served.setdefault((repo, tag), []).append(digest)
        streams.append(
            c.stream("shop", f"s{s}", [Docker(t, repo, t, ref_host=proxy.host) for t in tags])
        )
    c.make_repo(streams, hosts=[proxy.host])
    c.streamlock("reconcile")
    for s in range(4):
        repo = repo_of(c, f"s{s}")
        tags = [f"t{t}" for t in range(10)]
        for tag, digest in seeder.push_tags_bulk(
            repo, tags, created="2026-11-02T00:00:00Z"
        ).items():
            c.served.setdefault((repo, tag), []).append(digest)
    proxy.clear_requests()
    proxy.slow(0.05, path="/manifests/", times=None)
    started = time.monotonic()
    proc = c.popen("reconcile")
    deadline = time.monotonic() + 30
    while proxy.count() < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    c.note(f"killed after {proxy.count()} requests")
    assert server._process is not None
    server._process.kill()
    server._process.wait(timeout=10)
    run = c.collect(proc, ("reconcile", "(registry killed)"), started, 120)
    reconciled(c, run)
    restart_same_port(server)
    proxy.clear_faults()


@case("remote-gone-mid-push", "the bare remote renamed while its pre-receive hook runs")
def remote_gone(c: Case) -> None:
    two_streams(c)
    move_all(c, "2")
    assert c.repo is not None
    marker = c.dir / "hook-started"
    # receive-pack keeps its directory open: the hook makes the push fail as a vanished
    # remote would, when the directory is gone by the time the push would land.
    slow = hook(
        c,
        "pre-receive",
        f"touch '{marker}'\nsleep 2\n[ -d '{c.repo.remote}' ] || exit 1\nexit 0\n",
    )
    started = time.monotonic()
    proc = c.popen("reconcile")
    away = c.repo.remote.with_name("remote.gone")
    deadline = time.monotonic() + 30
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    moved = marker.exists()
    if moved:
        c.repo.remote.rename(away)
    reconciled(c, c.collect(proc, ("reconcile", "(remote gone)"), started, 60))
    if moved:
        away.rename(c.repo.remote)
    else:
        c.note("the push never reached the hook")
    slow.unlink()


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system is full (bounded: 64 MB)."""
    with contextlib.suppress(OSError), path.open("wb") as out:
        for _ in range(1024):
            out.write(b"\0" * 65536)
            out.flush()
        os.fsync(out.fileno())


@case("full-disk", "the checkout's tmpfs fills up mid-pass (else RLIMIT_FSIZE), then frees")
def full_disk(c: Case) -> None:
    proxy = behind_proxy(c, 1.0)
    disk = c.dir / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)]
    mounted = subprocess.run(mount, capture_output=True, check=False).returncode == 0
    if mounted:
        c.cleanups.append(lambda: subprocess.run(["umount", "-l", str(disk)], check=False))
        checkout = c.repo.clone(disk / "work")  # type: ignore[union-attr]
        filler = disk / "filler"
        started = time.monotonic()
        proc = c.popen("reconcile", repo=checkout)
        if when_registry_asked(c, proxy, proc):
            fill(filler)
        run = c.collect(proc, ("reconcile", "(disk full)"), started, 60)
        filler.unlink(missing_ok=True)
        c.note("tmpfs filled mid-pass")
    else:
        checkout = c.work

        def small_files() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))

        run = c.streamlock("reconcile", preexec=small_files)
        c.note("no tmpfs: RLIMIT_FSIZE 512 B")
    reconciled(c, run)
    proxy.clear_faults()
    c.checkout = checkout


@case("hostile-yaml-set", "alias bomb, deep nesting, 2 MB file, python tag, ../ name, symlink out")
def hostile_yaml(c: Case) -> None:
    good = repo_of(c, "good")
    c.push(good, "1", salt="g1")
    marker = c.dir / "python-tag-ran"
    outside = c.dir / "outside.yaml"
    _, outside_text = c.stream("shop", "outside", [])
    outside.write_text(outside_text)
    bomb = "".join(
        f"{k}: &{k} [{', '.join(['*' + p] * 9 if p else ['x'] * 9)}]\n"
        for p, k in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi", strict=True)
    )
    hostile = {
        "streams/shop/bomb.yaml": bomb,
        "streams/shop/deep.yaml": "spec: " + "[" * 5000 + "]" * 5000 + "\n",
        "streams/shop/huge.yaml": "# " + "x" * (2 * 1024 * 1024) + "\nkind: ImageStream\n",
        "streams/shop/pytag.yaml": (
            f'metadata: !!python/object/apply:os.system ["touch {marker}"]\n'
        ),
        "streams/shop/dotdot.yaml": c.stream("..", "../../escape", [Docker("t", good, "1")])[1],
    }
    c.docker.pop(("..", "../../escape", "t"), None)
    c.make_repo([c.stream("shop", "good", [Docker("t", good, "1")])], files=hostile)
    os.symlink(outside, c.work / "streams/shop/link.yaml")
    git(c.work, "add", "--all")
    git(c.work, "commit", "--quiet", "-m", "a symlink out of the repository")
    git(c.work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
    validate = c.streamlock("validate")
    located = validate.output
    for path in [*hostile, "streams/shop/link.yaml"]:
        if not re.search(rf"(?m)^{re.escape(path)}(:\d+)?", located):
            c.problem(f"no located error for {path.rsplit('/', 1)[-1]}")
    reconciled(c, c.streamlock("reconcile"))
    c.push(good, "1", salt="g2")
    if marker.exists():
        c.problem("the python tag ran")
    escaped = [p for p in c.dir.rglob("*escape*") if "streams" not in p.parts]
    if escaped:
        c.counts.wrong += len(escaped)
        c.note(f"file written outside the repository: {escaped[0].name}")


@case(
    "hostile-registry-set",
    "endless body, redirect loop, 401 loop, digest mismatch beside good tags",
)
def hostile_registry(c: Case) -> None:
    hostile = HostileRegistry().start()
    c.cleanups.append(hostile.stop)
    good, fine = repo_of(c, "good"), repo_of(c, "fine")
    c.push(good, "1", salt="g1")
    c.push(fine, "1", salt="f1")
    bad = [
        Docker(kind, f"{kind}/x", "1", ref_host=hostile.host)
        for kind in ("endless", "loop", "unauth", "mismatch")
    ]
    c.make_repo(
        [
            c.stream("shop", "bad", [*bad, Docker("fine", fine, "1")]),
            c.stream("shop", "good", [Docker("t", good, "1")]),
        ]
    )
    for tag in bad:
        c.exempt.add(("shop", "bad", tag.tag))
        c.tolerated.add(("shop", "bad", tag.tag))
        c.docker.pop(("shop", "bad", tag.tag), None)
    run = c.streamlock("reconcile", timeout=120)
    reconciled(c, run)
    if run.code is None:
        c.problem("the pass did not end within 120s")
    else:
        failed = {k[2] for k in run.failed_tags()}
        missing = {t.tag for t in bad} - failed
        if missing:
            c.problem(f"not reported as tag errors: {', '.join(sorted(missing))}")
    c.push(good, "1", salt="g2")
    c.push(fine, "1", salt="f2")


@case("secrets-everywhere", "debug logs, plan/describe/history, a 401 from the registry")
def secrets_everywhere(c: Case) -> None:
    two_streams(c)
    proxy = FaultProxy(c.lab.registry).start()
    c.cleanups.append(proxy.stop)
    other = repo_of(c, "other")
    c.push(other, "1", salt="o1")
    assert c.repo is not None
    path, text = c.stream("shop", "other", [Docker("t", other, "1", ref_host=proxy.host)])
    config = c.config_yaml([proxy.host])
    c.repo.commit({path: text, "streamlock.yaml": config}, "add a stream behind a proxy")
    proxy.fail(401, path="/manifests/", times=4)
    move_all(c, "2")
    for args in (
        ("--debug", "--log-level", "debug", "reconcile", "-o", "json"),
        ("--log-level", "debug", "--log-format", "json", "plan", "-A"),
        ("describe", "shop/app"),
        ("history", "shop/app:a"),
        ("validate",),
    ):
        c.streamlock(*args)
    proxy.clear_faults()
    c.note(f"{len(c.runs)} runs grepped")
