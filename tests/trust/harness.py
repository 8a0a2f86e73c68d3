"""The trust harness: a lab of real processes, one case at a time, and the checkers every case uses.

A case drives the real ``streamlock`` script (a subprocess with ``PYTHONPATH`` set to this
checkout, so the harness tests whatever checkout it runs in) against a real ``docker-registry``
with basic auth and a bare Git remote, all on 127.0.0.1, then hands its repository to the generic
checkers. They judge from the outside, never through the reconciler's own code:

- ``stuck``: after the fault is gone, plain ``streamlock reconcile`` in the case's checkout must
  complete a pass and leave nothing unpushed within ``STUCK_RUNS`` runs.
- ``converged``: after plain reconciles in a fresh clone, the remote's locks pin, for every
  ``DockerImage`` tag, the digest the registry serves now, and followers pin their source's pin.
  A tag left on a digest the registry served before (or with no pin) is a bump lost; a tag on a
  digest the registry never served for it is a wrong pin.
- ``exactly_once``: every ``Streamlock-*`` block in the reconciler's commits on the remote must
  tell the truth: its image is what that commit's lock pins, its ``Previous`` what the parent's
  lock pinned, its lock passes ``schemas/lock.schema.json``, and no (tag, image) is recorded
  twice. Each false or duplicate record counts as a wrong pin: the revert rule reads these
  records as its only state, so a false record pins wrongly later.
- ``secrets``: the registry password and a CI token (both in the environment of every run) are
  searched in every run's output, every file the case left on disk, and every Git object of every
  repository (``git cat-file --batch-all-objects --batch``).

No pytest import: ``python -m tests.trust`` runs it, and one pytest test drives it through its API.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.fixtures.gitremote import BRANCH, ConfigRepo, git, make_config_repo
from tests.fixtures.images import Seeder
from tests.fixtures.registry_server import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_USER = "trust"
REGISTRY_PASSWORD = "trust-pw-7f3a9c1e-SECRET"
CI_TOKEN = "ci-token-4b8d2e6f-SECRET"
SECRETS = (REGISTRY_PASSWORD, CI_TOKEN)
USER_ENV = "TRUST_REGISTRY_USER"
PASSWORD_ENV = "TRUST_REGISTRY_PASSWORD"
BOT_NAME = "streamlock-trust"
BOT_EMAIL = "bot@trust.invalid"
PERSON = ("Trust Person", "person@trust.invalid")
RUN_TIMEOUT = 60.0
STUCK_RUNS = 3
CONVERGE_RUNS = 3
_SUMMARY_RE = re.compile(r"^[✓✗] \d+ tags?: ", re.MULTILINE)

TagKey = tuple[str, str, str]  # (namespace, stream, tag)


def streamlock_script() -> list[str]:
    """The installed console script next to this interpreter (as users run it)."""
    script = Path(sys.executable).with_name("streamlock")
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


# --- results -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Counts:
    """The four numbers every row must show as 0."""

    lost: int = 0
    wrong: int = 0
    leaked: int = 0
    stuck: int = 0

    def total(self) -> int:
        return self.lost + self.wrong + self.leaked + self.stuck


@dataclass(frozen=True, slots=True)
class Row:
    """One case's line in the table."""

    name: str
    did: str
    result: str
    counts: Counts
    problems: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems and self.counts.total() == 0


@dataclass(frozen=True, slots=True)
class Run:
    """One streamlock process: what it was asked, how it ended, what it printed."""

    args: tuple[str, ...]
    code: int | None  # None: killed by the harness (timeout or on purpose)
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def failed_tags(self) -> set[TagKey]:
        """Rows of the reconcile table whose READY column is False."""
        failed = set()
        for line in self.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[0] != "NAMESPACE" and "False" in fields[4:]:
                failed.add((fields[0], fields[1], fields[2]))
        return failed

    def completed_pass(self) -> bool:
        """Exit 0, or exit 1 after a whole pass (its summary line), not a refusal or a crash."""
        if self.code == 0:
            return True
        return self.code == 1 and bool(_SUMMARY_RE.search(self.stderr))

    def brief(self) -> str:
        """The last line of stderr, for a result column."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        if self.code is None:
            return "killed/timed out"
        if "Traceback (most recent call last)" in self.output:
            last = lines[-1] if lines else ""
            return f"traceback: {last[:80]}"
        return (lines[-1] if lines else f"exit {self.code}")[:100]


# --- what a case declares ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Docker:
    """A ``DockerImage`` tag: ``ref_host`` is what the stream file names (registry or proxy)."""

    tag: str
    repo: str
    source_tag: str
    ref_host: str | None = None
    scheduled: bool = True
    extra: str = ""


@dataclass(frozen=True, slots=True)
class Follow:
    """An ``ImageStreamTag`` follower of ``target`` (``stream:tag``) in ``namespace``."""

    tag: str
    target: str
    namespace: str | None = None


TagDef = Docker | Follow


def stream_yaml(namespace: str, name: str, tags: Sequence[TagDef], host: str) -> str:
    """An ImageStream file with the given tags."""
    lines = [
        "apiVersion: image.openshift.io/v1",
        "kind: ImageStream",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {namespace}",
        "spec:",
        "  tags:",
    ]
    for tag in tags:
        lines.append(f"  - name: {json.dumps(tag.tag)}")
        lines.append("    from:")
        if isinstance(tag, Docker):
            ref = f"{tag.ref_host or host}/{tag.repo}:{tag.source_tag}"
            lines += ["      kind: DockerImage", f"      name: {json.dumps(ref)}"]
            if tag.scheduled:
                lines += ["    importPolicy:", "      scheduled: true"]
            if tag.extra:
                lines.append(tag.extra.rstrip("\n"))
        else:
            lines += ["      kind: ImageStreamTag", f"      name: {json.dumps(tag.target)}"]
            if tag.namespace:
                lines.append(f"      namespace: {tag.namespace}")
    return "\n".join(lines) + "\n"


# --- the lab -------------------------------------------------------------------------------------


class Lab:
    """What every case shares: a temp root, a git home, one authenticated registry."""

    def __init__(self, root: Path | None = None, *, seed: int = 8) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="streamlock-trust-"))
        self.seed = seed
        self.home = self.root / "home"
        self.registry = RegistryServer(
            self.root / "registry", htpasswd={REGISTRY_USER: REGISTRY_PASSWORD}
        )
        self._seeder: Seeder | None = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> Lab:
        self._git_home()
        self.registry.start()
        self._seeder = Seeder.for_server(self.registry)
        return self

    def close(self, keep: bool = False) -> None:
        if self._seeder is not None:
            self._seeder.close()
        self.registry.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def seeder(self) -> Seeder:
        assert self._seeder is not None, "lab not started"
        return self._seeder

    def _git_home(self) -> None:
        """HOME and a global git config of our own: identity, no system config, file:// allowed."""
        self.home.mkdir(parents=True, exist_ok=True)
        gitconfig = self.home / ".gitconfig"
        gitconfig.write_text(
            f"[user]\n\tname = {PERSON[0]}\n\temail = {PERSON[1]}\n"
            "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
            '[protocol "file"]\n\tallow = always\n'
        )
        values = {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(gitconfig),
            "GIT_TERMINAL_PROMPT": "0",
        }
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "STREAMLOCK_DEBUG"):
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ.pop(key, None)

    def case(self, name: str) -> Case:
        directory = self.root / "cases" / re.sub(r"[^a-z0-9-]+", "-", name.lower())
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return Case(self, name, directory)


@dataclass
class Case:
    """One case's state: its repo, what it pushed, what it expects, and the runs it made."""

    lab: Lab
    name: str
    dir: Path
    repo: ConfigRepo | None = None
    runs: list[Run] = field(default_factory=list)
    served: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    docker: dict[TagKey, tuple[str, str]] = field(default_factory=dict)
    follows: dict[TagKey, TagKey] = field(default_factory=dict)
    exempt: set[TagKey] = field(default_factory=set)
    tolerated: set[TagKey] = field(default_factory=set)
    secrets: set[str] = field(default_factory=lambda: set(SECRETS))
    allowed_blobs: set[str] = field(default_factory=set)
    allowed_paths: set[str] = field(default_factory=set)
    seeders: dict[str, Seeder] = field(default_factory=dict)
    checkout: Path | None = None
    counts: Counts = field(default_factory=Counts)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    check_stuck: bool = True
    check_converged: bool = True
    check_once: bool = True
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    # --- registry ------------------------------------------------------------------------------
    def push(self, repo: str, tag: str, *, seeder: Seeder | None = None, **kwargs: Any) -> str:
        """Push an image for ``repo:tag`` and remember the digest as served for that tag."""
        if seeder is not None:
            self.seeders[repo] = seeder
        digest = (seeder or self.seeders.get(repo) or self.lab.seeder).push_image(
            repo, tag, **kwargs
        )
        self.served.setdefault((repo, tag), []).append(digest)
        return digest

    def current(self, repo: str, tag: str) -> str | None:
        return (self.seeders.get(repo) or self.lab.seeder).digest(repo, tag)

    # --- repository ----------------------------------------------------------------------------
    def config_yaml(self, hosts: Sequence[str] = (), extra: str = "") -> str:
        """The repository's config; the registry credentials go to an operator file
        (``STREAMLOCK_AUTH_CONFIG``), as credentials never come from the repository."""
        hosts = [self.lab.registry.host, *hosts]
        lines = [
            "apiVersion: streamlock/v1",
            "kind: Config",
            "git:",
            f"  author: {BOT_NAME} <{BOT_EMAIL}>",
            "registries:",
            *(f"  - host: {json.dumps(host)}" for host in hosts),
        ]
        operator = ["registries:"]
        for host in hosts:
            operator += [
                f"  - host: {json.dumps(host)}",
                "    auth:",
                "      env:",
                f"        username: {USER_ENV}",
                f"        password: {PASSWORD_ENV}",
            ]
        auth_file = self.dir / "operator-auth.yaml"
        auth_file.write_text("\n".join(operator) + "\n")
        self.env["STREAMLOCK_AUTH_CONFIG"] = str(auth_file)
        return "\n".join(lines) + "\n" + extra

    def stream(self, namespace: str, name: str, tags: Sequence[TagDef]) -> tuple[str, str]:
        """(path, text) of a stream file; registers what each tag should converge to."""
        for tag in tags:
            key = (namespace, name, tag.tag)
            if isinstance(tag, Docker):
                self.docker[key] = (tag.repo, tag.source_tag)
            else:
                stream, _, target = tag.target.rpartition(":")
                self.follows[key] = (tag.namespace or namespace, stream or name, target)
        path = f"streams/{namespace}/{name}.yaml"
        return path, stream_yaml(namespace, name, tags, self.lab.registry.host)

    def make_repo(
        self,
        streams: Sequence[tuple[str, str]],
        *,
        hosts: Sequence[str] = (),
        config_extra: str = "",
        files: Mapping[str, str | bytes] | None = None,
    ) -> ConfigRepo:
        content: dict[str, str | bytes] = {"streamlock.yaml": self.config_yaml(hosts, config_extra)}
        content.update(dict(streams))
        content.update(files or {})
        self.repo = make_config_repo(self.dir / "repo", content)
        return self.repo

    @property
    def work(self) -> Path:
        assert self.repo is not None
        return self.repo.work

    def clone(self, name: str) -> Path:
        assert self.repo is not None
        return self.repo.clone(self.dir / name)

    # --- running streamlock --------------------------------------------------------------------
    def run_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "PYTHONPATH")
        }
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                USER_ENV: REGISTRY_USER,
                PASSWORD_ENV: REGISTRY_PASSWORD,
                "CI_JOB_TOKEN": CI_TOKEN,
                "GITHUB_TOKEN": CI_TOKEN,
                "NO_PROXY": "127.0.0.1,localhost,::1",
            }
        )
        env.update(self.env)
        env.update(extra or {})
        return env

    def popen(
        self,
        *args: str,
        repo: Path | None = None,
        env: Mapping[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``streamlock ARGS --repo REPO`` (its own process group, so a kill is total)."""
        where = repo or self.work
        full = [*streamlock_script(), *args, "--repo", str(where)]
        return subprocess.Popen(
            full,
            cwd=where,
            env=self.run_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
        )

    def collect(
        self, proc: subprocess.Popen[bytes], args: Sequence[str], started: float, timeout: float
    ) -> Run:
        """Wait for a started process (killing its group after ``timeout``) and record it."""
        killed = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate(timeout=30)
            killed = True
        run = Run(
            args=tuple(args),
            code=None if killed or proc.returncode < 0 else proc.returncode,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            seconds=time.monotonic() - started,
        )
        self.runs.append(run)
        return run

    def streamlock(
        self,
        *args: str,
        repo: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = RUN_TIMEOUT,
        preexec: Callable[[], None] | None = None,
    ) -> Run:
        """Run ``streamlock ARGS --repo REPO`` to its end (or ``timeout``) and record it."""
        started = time.monotonic()
        proc = self.popen(*args, repo=repo, env=env, preexec=preexec)
        return self.collect(proc, args, started, timeout)

    # --- reporting -----------------------------------------------------------------------------
    def note(self, text: str) -> None:
        self.notes.append(text)

    def problem(self, text: str) -> None:
        """An expectation of this case that did not hold (the row fails)."""
        self.problems.append(text)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything it started (git, hooks)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


# --- reading the remote, independently of the reconciler ----------------------------------------

_yaml = YAML(typ="safe")


def lock_images(text: str | bytes | None) -> dict[str, str] | None:
    """``{tag: image}`` of a lock file's text; None when absent or unreadable."""
    if text is None:
        return None
    try:
        data = _yaml.load(io.BytesIO(text if isinstance(text, bytes) else text.encode()))
        tags = data.get("tags") or {}
        return {str(t): str(e.get("image")) for t, e in tags.items() if isinstance(e, dict)}
    except Exception:
        return None


def show(repo: Path, rev: str, path: str) -> bytes | None:
    """A file's bytes at ``rev`` in ``repo`` (bare or not); None if absent."""
    result = subprocess.run(
        ["git", "cat-file", "blob", f"{rev}:{path}"],
        cwd=repo,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.stdout if result.returncode == 0 else None


def lock_path(key: TagKey) -> str:
    return f"locks/{key[0]}/{key[1]}.lock.yaml"


TRAILER_KEYS = ("streamlock-tag", "streamlock-from", "streamlock-previous", "streamlock-image")


def trailer_blocks(message: str) -> list[dict[str, str]]:
    """The ``Streamlock-*`` blocks of a message's final paragraph (as git reads trailers)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return []
    blocks: list[dict[str, str]] = []
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(":")
        if not sep or key.strip().lower() not in TRAILER_KEYS:
            continue
        name = key.strip().lower().removeprefix("streamlock-")
        if name == "tag":
            blocks.append({"tag": value.strip()})
        elif blocks:
            blocks[-1][name] = value.strip()
    return blocks


def bot_commits(remote: Path, ref: str = BRANCH) -> list[tuple[str, str, str]]:
    """``(sha, parent, message)`` of commits by the reconciler's identity, oldest first."""
    out = git(remote, "log", "--reverse", f"--author={BOT_EMAIL}", "--format=%H %P%x00%B%x1e", ref)
    commits = []
    for record in out.split("\x1e"):
        record = record.strip("\n")
        if not record:
            continue
        head, _, message = record.partition("\x00")
        sha, *parents = head.split()
        commits.append((sha, parents[0] if parents else "", message))
    return commits


# --- the checkers --------------------------------------------------------------------------------


def check_stuck(
    case: Case,
    checkout: Path | None = None,
    *,
    runs: int = STUCK_RUNS,
    accept: Callable[[Run], bool] | None = None,
) -> bool:
    """Plain ``reconcile`` (what cron runs) must complete a pass and leave nothing unpushed."""
    where = checkout or case.checkout or case.work
    last: Run | None = None
    for _ in range(runs):
        last = case.streamlock("reconcile", repo=where)
        if accept is not None and accept(last):
            return True
        failed = last.failed_tags() - case.tolerated
        if last.completed_pass() and not failed and _pushed(case, where):
            return True
    case.counts.stuck += 1
    case.note(f"stuck: {last.brief() if last else 'no run'}")
    return False


def _pushed(case: Case, checkout: Path) -> bool:
    """The checkout's HEAD is on the remote's branch. Asked of the remote, so the check never
    fetches into the checkout (a fresh remote-tracking ref would help the next run along)."""
    assert case.repo is not None
    head = git(checkout, "rev-parse", "HEAD").strip()
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", head, f"refs/heads/{BRANCH}"],
        cwd=case.repo.remote,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def check_converged(case: Case, *, runs: int = CONVERGE_RUNS, fresh: bool = True) -> None:
    """After plain reconciles (fresh clone), the remote pins what the registry serves now."""
    assert case.repo is not None
    if fresh:
        where = case.clone(f"verify-{len(case.runs)}")
        for _ in range(runs):
            run = case.streamlock("reconcile", repo=where)
            if run.completed_pass() and not (run.failed_tags() - case.tolerated):
                break
    remote = case.repo.remote
    pins: dict[TagKey, str | None] = {}
    locks: dict[str, dict[str, str] | None] = {}
    for key in [*case.docker, *case.follows]:
        path = lock_path(key)
        if path not in locks:
            locks[path] = lock_images(show(remote, BRANCH, path))
        pins[key] = (locks[path] or {}).get(key[2])
    for key, (repo, tag) in sorted(case.docker.items()):
        if key in case.exempt:
            continue
        _judge(case, key, pins[key], case.current(repo, tag), case.served.get((repo, tag), []))
    for key, target in sorted(case.follows.items()):
        if key in case.exempt or target in case.exempt:
            continue
        source = case.docker.get(target)
        history = case.served.get(source, []) if source else []
        _judge(case, key, pins[key], pins.get(target), history)


def _judge(case: Case, key: TagKey, pinned: str | None, want: str | None, history: list[str]):
    name = "/".join(key[:2]) + ":" + key[2]
    if want is None or pinned == want:
        return
    if pinned is None or pinned in history:
        case.counts.lost += 1
        case.note(f"lost {name}")
    else:
        case.counts.wrong += 1
        case.note(f"wrong pin {name}")


def check_exactly_once(case: Case) -> None:
    """Every bump record on the remote is true, and no (tag, image) is recorded twice."""
    assert case.repo is not None
    remote = case.repo.remote
    validator = _lock_validator()
    seen: set[tuple[str, str]] = set()
    for sha, parent, message in bot_commits(remote):
        for block in trailer_blocks(message):
            tag = block.get("tag", "")
            ns_stream, _, tag_name = tag.rpartition(":")
            ns, _, stream = ns_stream.partition("/")
            path = lock_path((ns, stream, tag_name))
            now = (lock_images(show(remote, sha, path)) or {}).get(tag_name)
            before = (
                (lock_images(show(remote, parent, path)) or {}).get(tag_name) if parent else None
            )
            previous = block.get("previous")
            previous = None if previous in (None, "none") else previous
            image = block.get("image")
            if image != now:
                case.counts.wrong += 1
                case.note(f"false record {tag} in {sha[:7]}")
            elif previous != before:
                case.counts.wrong += 1
                case.note(f"wrong Previous {tag} in {sha[:7]}")
            if (tag, str(image)) in seen:
                case.counts.wrong += 1
                case.note(f"duplicate record {tag}")
            seen.add((tag, str(image)))
        if validator is not None:
            changed = git(remote, "diff-tree", "--no-commit-id", "--name-only", "-r", sha)
            for path in changed.split():
                if path.startswith("locks/") and path.endswith(".lock.yaml"):
                    data = show(remote, sha, path)
                    if data is not None and not _valid_lock(validator, data):
                        case.counts.wrong += 1
                        case.note(f"invalid lock committed: {path}")


def _lock_validator() -> Any:
    try:
        import jsonschema

        schema = json.loads((ROOT / "schemas" / "lock.schema.json").read_text())
        return jsonschema.Draft202012Validator(schema)
    except Exception:
        return None


def _valid_lock(validator: Any, data: bytes) -> bool:
    try:
        doc = _yaml.load(io.BytesIO(data))
    except Exception:
        return False
    return not any(True for _ in validator.iter_errors(json.loads(json.dumps(doc, default=str))))


def check_secrets(case: Case) -> None:
    """Each secret found in a run's output, a file, or a Git object counts once per place."""
    secrets = [s.encode() for s in case.secrets]
    hits: list[str] = []
    for index, run in enumerate(case.runs):
        for secret in secrets:
            if secret in run.output.encode():
                hits.append(f"output of run {index + 1} ({' '.join(run.args[:1])})")
    repos = []
    for path in _files(case.dir):
        if path.name == "HEAD" and (path.parent / "objects").is_dir():
            repos.append(path.parent)
        if "objects" in path.parts and (
            path.parent.name == "pack" or re.fullmatch(r"[0-9a-f]{2}", path.parent.name)
        ):
            continue  # compressed: read through git below
        if any(path.as_posix().endswith("/" + allowed) for allowed in case.allowed_paths):
            continue  # a person's own file that holds the secret on purpose
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            for secret in secrets:
                if secret in data:
                    hits.append(f"file {path.relative_to(case.dir)}")
    for repo in repos:
        hits += _object_hits(repo, secrets, case.allowed_blobs, case.dir)
    case.counts.leaked += len(hits)
    for hit in hits[:3]:
        case.note(f"secret in {hit}")


def _files(root: Path) -> Iterator[Path]:
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(base, d))]
        for name in files:
            path = Path(base) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _object_hits(repo: Path, secrets: Sequence[bytes], allowed: set[str], base: Path) -> list[str]:
    result = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=repo,
        capture_output=True,
        timeout=60,
        check=False,
    )
    data = result.stdout
    hits = []
    position = 0
    while position < len(data):
        end = data.index(b"\n", position)
        header = data[position:end].split()
        size = int(header[2])
        body = data[end + 1 : end + 1 + size]
        position = end + 2 + size
        if header[0].decode() in allowed:
            continue
        for secret in secrets:
            if secret in body:
                where = repo.relative_to(base) if repo.is_relative_to(base) else repo
                hits.append(f"git {header[1].decode()} {header[0].decode()[:7]} in {where}")
    return hits


def blob_id(content: str | bytes) -> str:
    """The id git gives a blob with this content (for ``Case.allowed_blobs``)."""
    data = content.encode() if isinstance(content, str) else content
    result = subprocess.run(
        ["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True, timeout=30
    )
    return result.stdout.decode().strip()


# --- running cases -------------------------------------------------------------------------------

CaseBody = Callable[[Case], None]


@dataclass(frozen=True, slots=True)
class CaseSpec:
    name: str
    did: str
    body: CaseBody


REGISTRY: list[CaseSpec] = []


def case(name: str, did: str) -> Callable[[CaseBody], CaseBody]:
    """Register a case: its name (for ``-k``) and a short 'what was done'."""

    def register(body: CaseBody) -> CaseBody:
        REGISTRY.append(CaseSpec(name, did, body))
        return body

    return register


def finish(case: Case) -> None:
    """The generic checks, in the order a person would meet them."""
    if case.repo is not None:
        if case.check_stuck:
            check_stuck(case)
        if case.check_converged:
            check_converged(case)
        if case.check_once:
            check_exactly_once(case)
    check_secrets(case)


def run_case(lab: Lab, spec: CaseSpec, *, debug: bool = False) -> Row:
    """One case and its checks; an exception is a row with an error, not a traceback wall."""
    started = time.monotonic()
    current = lab.case(spec.name)
    error = None
    try:
        spec.body(current)
        finish(current)
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
        if debug:
            traceback.print_exc()
    finally:
        for cleanup in reversed(current.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
    result = "; ".join([*current.problems, *current.notes]) or "ok"
    return Row(
        name=spec.name,
        did=spec.did,
        result=result,
        counts=current.counts,
        problems=tuple(current.problems),
        error=error,
        seconds=time.monotonic() - started,
    )


def table(rows: Sequence[Row], width: int = 60) -> str:
    """The table people read: one row per case, the four counts last."""
    head = ("case", "what was done", "result", "lost", "wrong", "leaked", "stuck")

    def cut(text: str, n: int) -> str:
        text = " ".join(text.split())
        return text if len(text) <= n else text[: n - 1] + "…"

    lines = [head]
    for row in rows:
        mark = "✓" if row.ok else "✗"
        result = f"ERROR {row.error}" if row.error else row.result
        lines.append(
            (
                f"{mark} {row.name}",
                cut(row.did, 44),
                cut(result, width),
                str(row.counts.lost),
                str(row.counts.wrong),
                str(row.counts.leaked),
                str(row.counts.stuck),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(w) if i >= 3 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
