"""The Git shell: a working tree, its commits, pushes, and the index of reconciler trailers.

Thin on purpose: every method is one or a few ``git`` processes. Process errors become
``GitError`` here, with credentials in URLs redacted. Commits are built with plumbing (one
``fast-import`` per pass, or ``commit-tree`` when signing, then one compare-and-swap
``update-ref``), so exactly the given files change, other staged work is left alone and no client
hook rewrites bot output. Nothing here ever force-pushes the watched branch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reconciler import cachefile, trailers
from reconciler.errors import GitError, InputError

REVIEW_PREFIX = "streamlock/"
LOCAL_TIMEOUT = 120.0
NETWORK_TIMEOUT = 600.0
TIMEOUT_VARIABLE = "STREAMLOCK_GIT_TIMEOUT"  # seconds for fetch, push and clone
RUN_LOCK_WAIT = 30.0  # how long a second run on one checkout waits for the first
_STALE_LOCK_WAIT = 2.0  # a git process orphaned by a killed run gets this long to finish
_ZERO = "0" * 40
# Attributes under which hash-object's input is not the blob: line endings, clean filters, ident.
_FILTER_ATTRIBUTES = ("filter", "text", "eol", "crlf", "ident", "working-tree-encoding")
JOURNAL = Path("streamlock") / "journal.json"
# One commit to build: ``{path: bytes, or None to delete}`` and its message.
NewCommit = tuple[Mapping[str, bytes | None], str]
_AUTHOR_RE = re.compile(r"^\s*([^<>\n]+?)\s*<([^<>\s]+)>\s*$")
_CREDENTIALS_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
# Another writer got there first: the branch moved, or its ref lock was held at that moment.
_REJECTED_RE = re.compile(
    r"^!\t[^\t]*\t\[(?:rejected\] \((?:non-fast-forward|fetch first|stale info)"
    r"|remote rejected\] \((?:failed to update ref|failed to lock|cannot lock ref))"
)


def redact(text: str) -> str:
    """Drop ``user:password@`` from any URL in a message before it is shown or logged."""
    return _CREDENTIALS_RE.sub(r"\1***@", text)


def review_branch(namespace: str, stream: str) -> str:
    """The bot-owned branch a stream's bump goes to in ``push: branch`` mode."""
    return f"{REVIEW_PREFIX}{namespace}-{stream}"


def parse_author(author: str) -> tuple[str, str]:
    """``"Name <email>"`` → ``(name, email)``."""
    match = _AUTHOR_RE.match(author)
    if not match:
        raise InputError(f"invalid git author {author!r}", hint="write it as 'Name <email>'")
    return match.group(1), match.group(2)


def _repo_path(path: str) -> str:
    """A normalised path relative to the repository root, or an InputError.

    No ``.git`` at any depth (git would skip such an index entry silently) and no control
    characters (``cat-file --batch`` reads one path per line).
    """
    pure = PurePosixPath(path)
    if (
        not path
        or "\\" in path
        or any(ord(c) < 0x20 or c == "\x7f" for c in path)
        or pure.is_absolute()
        or str(pure) != path
        or any(part in ("..", ".") or part.lower() == ".git" for part in pure.parts)
    ):
        raise InputError(
            f"refusing path {path!r}: not a plain path inside the repository",
            hint="use a relative path without '..' outside .git",
        )
    return path


# Inherited from a hook or a wrapper these would point git at another repository or index.
_REPO_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")


def _env(network: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARIABLES}
    env["LC_ALL"] = "C"
    if network:
        env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def network_timeout() -> float:
    """Seconds a fetch, push or clone may take (``STREAMLOCK_GIT_TIMEOUT``, default 600)."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return NETWORK_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:
        raise InputError(
            f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds",
            hint="use a positive number such as 600",
        )
    return value


def _start(
    args: Sequence[str], cwd: Path | None, env: Mapping[str, str], *, stdin: bool
) -> subprocess.Popen[bytes]:
    """``git args`` started in its own process group (see :func:`_run`), output piped."""
    try:
        return subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror}", hint="install git") from exc


def _run(
    args: Sequence[str],
    *,
    cwd: Path | None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    network: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git args``; a failure becomes GitError naming the subcommand, never the URL.

    git runs in its own process group, and a timeout kills the whole group: a push's
    ``git-receive-pack`` and the remote's hooks (local and ssh transports run them as
    children) must not go on and land the push after streamlock has reported it failed.
    """
    full_env = _env(network)
    if env:
        full_env.update(env)
    timeout = network_timeout() if network else LOCAL_TIMEOUT
    proc = _start(args, cwd, full_env, stdin=input is not None)
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise GitError(f"git {args[0]} did not finish within {timeout:.0f}s") from exc
    except BaseException:
        _kill_group(proc)
        raise
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise GitError(f"git {args[0]} failed: {_stderr(result)}")
    return result


def _stream(args: Sequence[str], *, cwd: Path | None, size: int = 1 << 20) -> Iterator[list[str]]:
    """The NUL-separated fields ``git args`` prints, in lists as they arrive (the last field of
    the output, after its final NUL, is dropped); a failure or a timeout is a GitError, as in
    :func:`_run`. The caller may stop early: git is then killed."""
    proc = _start(args, cwd, _env(False), stdin=False)
    assert proc.stdout is not None and proc.stderr is not None
    timer = threading.Timer(LOCAL_TIMEOUT, _kill_group, [proc])
    timer.start()
    finished = False
    try:
        tail = b""
        while block := proc.stdout.read(size):
            *whole, tail = (tail + block).split(b"\x00")
            yield [field.decode("utf-8", "replace") for field in whole]
        stderr = proc.stderr.read()
        proc.wait()
        finished = True
    finally:
        timer.cancel()
        if not finished:
            _kill_group(proc)
        proc.stdout.close()
        proc.stderr.close()
    if proc.returncode == -signal.SIGKILL:
        raise GitError(f"git {args[0]} did not finish within {LOCAL_TIMEOUT:.0f}s")
    if proc.returncode != 0:
        result = subprocess.CompletedProcess(proc.args, proc.returncode, b"", stderr)
        raise GitError(f"git {args[0]} failed: {_stderr(result)}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL git and everything it started, then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=10)


def _stderr(result: subprocess.CompletedProcess[bytes]) -> str:
    text = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.returncode}"
    return redact(" ".join(text.splitlines()[-3:]))


class GitRepo:
    """A working tree the reconciler reads and commits to."""

    def __init__(self, root: Path, git_dir: Path) -> None:
        self.root = root
        self.git_dir = git_dir
        self._signing: bool | None = None
        self._filtered: dict[str, bool] = {}  # path -> git filters it when hashing
        self._scratch: Path | None = None
        self._scratch_commit: tuple[str, str] | None = None  # (commit, tree) the index holds
        self._autocrlf: bool | None = None

    def __repr__(self) -> str:
        return f"GitRepo({str(self.root)!r})"

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> GitRepo:
        """The repository whose working tree holds ``path``, found the way git finds it."""
        where = Path(path)
        if not where.is_dir():
            raise GitError(f"{os.fspath(path)}: no such directory")
        result = _run(
            ["rev-parse", "--is-bare-repository", "--absolute-git-dir", "--show-toplevel"],
            cwd=where,
            check=False,
        )
        lines = result.stdout.decode("utf-8", "surrogateescape").splitlines()
        if result.returncode == 0 and len(lines) == 3 and lines[0] == "false":
            return cls(Path(lines[2]).resolve(), Path(lines[1]).resolve())
        if lines[:1] == ["true"]:
            raise GitError(
                f"{os.fspath(path)} is a bare repository",
                hint="streamlock needs a working tree; clone it first",
            )
        if not lines and b"not a git repository" in result.stderr:
            raise GitError(
                f"{os.fspath(path)} is not inside a git repository",
                hint="run 'git init' or 'git clone' first, or pass the repository path",
            )
        raise GitError(f"{os.fspath(path)}: no working tree of a git repository: {_stderr(result)}")

    @classmethod
    def clone(cls, url: str, dest: str | os.PathLike[str], branch: str) -> GitRepo:
        """Clone ``url`` at ``branch`` into ``dest``, or reuse a clone of the same URL there."""
        target = Path(dest)
        if (target / ".git").exists():
            repo = cls.open(target)
            current = repo._git("remote", "get-url", "origin", check=False)
            if current.returncode != 0 or current.stdout.decode().strip() != url:
                raise GitError(
                    f"{target} holds a clone of another repository",
                    hint="remove the directory or choose another one",
                )
            return repo
        if target.exists() and any(target.iterdir()):
            raise GitError(f"{target} exists and is not a git clone", hint="use an empty directory")
        _run(
            ["clone", "--quiet", "--no-tags", "--branch", branch, "--", url, str(target)],
            cwd=None,
            network=True,
        )
        return cls.open(target)

    def _git(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        network: bool = False,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        return _run(args, cwd=self.root, input=input, env=env, network=network, check=check)

    def _out(self, *args: str) -> str:
        return self._git(*args).stdout.decode("utf-8", "replace").strip()

    # --- state -------------------------------------------------------------------------------

    def head(self) -> str | None:
        """The commit checked out, or None on an unborn branch."""
        result = self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def branch(self) -> str:
        """The branch checked out (which may be unborn)."""
        result = self._git("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if result.returncode != 0:
            raise GitError("HEAD is detached", hint="check out the branch to reconcile")
        return result.stdout.decode().strip()

    def upstream(self) -> tuple[str, str] | None:
        """``(remote, branch)`` the current branch tracks, or None."""
        ref = f"refs/heads/{self.branch()}"
        text = self._out(
            "for-each-ref", "--format=%(upstream:remotename)%00%(upstream:remoteref)", ref
        )
        remote, _, merge = text.partition("\x00")
        if not remote or not merge.startswith("refs/heads/"):
            return None
        return remote, merge.removeprefix("refs/heads/")

    def is_clean(self, paths: Sequence[str] = ()) -> bool:
        """No staged, unstaged or untracked change under ``paths`` (the whole tree if empty)."""
        return not self.changed_paths(paths)

    def changed_paths(self, paths: Sequence[str] = ()) -> list[str]:
        """Paths with a staged, unstaged or untracked change under ``paths``, sorted."""
        specs = [_repo_path(p.rstrip("/")) for p in paths]
        result = self._git(
            "--literal-pathspecs",
            "status",
            "--porcelain=v1",
            "-z",
            "--no-renames",
            "--untracked-files=all",
            "--",
            *specs,
        )
        records = result.stdout.decode("utf-8", "replace").split("\x00")
        return sorted({record[3:] for record in records if len(record) > 3})

    def has_remote(self, name: str) -> bool:
        """Whether a remote of that name is configured."""
        return self._git("remote", "get-url", "--", name, check=False).returncode == 0

    def user_identity(self) -> str:
        """``Name <email>`` of the person here, as ``git commit`` would take it (git config,
        ``GIT_AUTHOR_*`` variables): for commits people make through the CLI."""
        result = self._git("var", "GIT_AUTHOR_IDENT", check=False)
        ident = result.stdout.decode("utf-8", "replace").strip()
        if result.returncode != 0 or ">" not in ident:
            raise GitError(
                "no git identity to commit with", hint="set git config user.name and user.email"
            )
        return ident[: ident.rindex(">") + 1]

    def read(self, path: str, rev: str = "HEAD") -> bytes | None:
        """A file's bytes at ``rev``; None when the file (or an unborn HEAD) has none."""
        path = _repo_path(path)
        result = self._git("cat-file", "--batch", input=f"{rev}:{path}\n".encode())
        header, _, rest = result.stdout.partition(b"\n")
        fields = header.split()
        if fields[-1:] == [b"missing"]:
            known = self._git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
            if known.returncode != 0 and rev != "HEAD":
                raise GitError(f"unknown revision {rev!r}")
            return None
        if len(fields) != 3 or fields[1] != b"blob":
            raise GitError(f"cannot read {path} at {rev}: not a file")
        return rest[: int(fields[2])]

    def is_ancestor(self, ancestor: str, rev: str) -> bool:
        """True when ``ancestor`` is reachable from ``rev`` (False for an unknown commit)."""
        result = self._git("merge-base", "--is-ancestor", ancestor, rev, check=False)
        return result.returncode == 0

    def messages(self, revisions: str, grep: str | None = None) -> list[tuple[str, str]]:
        """``(sha, message)`` of the commits in ``revisions``, newest first, in one process.

        ``grep`` keeps only messages containing that text (any case). Order is
        ``--topo-order``, so a merged branch's commits come before the commits it was merged on.
        """
        out = self._git(
            "log",
            "--topo-order",
            "--no-show-signature",
            "--encoding=UTF-8",
            *(["--fixed-strings", "--regexp-ignore-case", f"--grep={grep}"] if grep else []),
            "--format=%H%x00%B%x00",
            revisions,
            "--",
        ).stdout.decode("utf-8", "replace")
        fields = out.split("\x00")
        return [(fields[i].strip(), fields[i + 1]) for i in range(0, len(fields) - 1, 2)]

    def config_value(self, key: str) -> str | None:
        """``git config --get key`` as git sees it for this repository; None when unset."""
        result = self._git("config", "--get", key, check=False)
        value = result.stdout.decode("utf-8", "replace").strip()
        return value if result.returncode == 0 and value else None

    def signing_configured(self) -> bool:
        """True when git would sign with SSH: ``gpg.format ssh`` and a ``user.signingkey``."""
        if self._signing is None:
            self._signing = (self.config_value("gpg.format") or "").lower() == "ssh" and bool(
                self.config_value("user.signingkey")
            )
        return self._signing

    def verification_configured(self) -> bool:
        """True when git checks SSH signatures: ``gpg.format ssh`` and an allowed signers file."""
        return (self.config_value("gpg.format") or "").lower() == "ssh" and bool(
            self.config_value("gpg.ssh.allowedSignersFile")
        )

    def signed_messages(self, revisions: str, grep: str | None = None) -> list[SignedMessage]:
        """Like :meth:`messages`, with each commit's author, committer and signature check.

        The check is git's ``%G?``: ``G`` only for a good signature by a key that
        ``gpg.ssh.allowedSignersFile`` allows for the signer's identity.
        """
        return list(self.iter_signed_messages(revisions, grep))

    def iter_signed_messages(
        self, revisions: str, grep: str | None = None
    ) -> Iterator[SignedMessage]:
        """:meth:`signed_messages` as git prints them: a year of history is tens of thousands
        of messages, and a caller that summarises them need not hold them all at once."""
        fields: list[str] = []
        for chunk in _stream(
            [
                "log",
                "--topo-order",
                "--encoding=UTF-8",
                *(["--fixed-strings", "--regexp-ignore-case", f"--grep={grep}"] if grep else []),
                "--format=%H%x00%an%x00%ae%x00%cn%x00%ce%x00%G?%x00%B%x00",
                revisions,
                "--",
            ],
            cwd=self.root,
        ):
            fields.extend(chunk)
            whole = len(fields) - len(fields) % 7
            for i in range(0, whole, 7):
                sha, an, ae, cn, ce, check, message = fields[i : i + 7]
                yield SignedMessage(
                    sha=sha.strip(),
                    author=(an, ae),
                    committer=(cn, ce),
                    signature=check,
                    message=message,
                )
            del fields[:whole]

    def changed_files(self, base: str, head: str) -> list[tuple[str, str]]:
        """``(status, path)`` of what ``head`` changes against the merge base with ``base``
        (what a pull request shows); renames count as a delete and an add."""
        out = self._git(
            "diff", "--name-status", "-z", "--no-renames", f"{base}...{head}", "--"
        ).stdout.decode("utf-8", "replace")
        fields = [f for f in out.split("\x00") if f]
        return [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]

    def merge_base(self, base: str, head: str) -> str:
        """The commit a pull request of ``head`` into ``base`` starts from."""
        result = self._git("merge-base", base, head, check=False)
        if result.returncode != 0:
            raise GitError(f"{base} and {head} have no common history")
        return result.stdout.decode().strip()

    def diff_paths(self, old: str, new: str, paths: Sequence[str] = ()) -> list[str]:
        """Paths whose content differs between two commits (under ``paths`` if given)."""
        out = self._git(
            "diff", "--name-only", "-z", "--no-renames", old, new, "--", *paths
        ).stdout.decode("utf-8", "replace")
        return [path for path in out.split("\x00") if path]

    def patch_id(self, old: str, new: str, paths: Sequence[str]) -> str | None:
        """git's ``patch-id`` of the change from ``old`` to ``new`` in ``paths``, without
        context or line numbers: equal ids mean the same edit (None when nothing changes)."""
        diff = self._git("diff", "-U0", "--no-renames", old, new, "--", *paths).stdout
        if not diff:
            return None
        out = self._git("patch-id", "--stable", input=diff).stdout.decode().split()
        return out[0] if out else None

    def resolve_commit(self, rev: str) -> str:
        """The full sha of the commit ``rev`` names; GitError when there is none."""
        result = self._git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if result.returncode != 0:
            raise GitError(f"unknown revision {rev!r}", hint="fetch it first, or name another")
        return result.stdout.decode().strip()

    def commits(self, revisions: str) -> list[LocalCommit]:
        """The commits in ``revisions`` (e.g. ``tip..HEAD``), newest first, with what they touch.

        Read as raw commit objects (one ``cat-file`` process), so no message can confuse the
        parsing; paths come from ``diff-tree`` per commit (this runs on the few unpushed commits).
        """
        shas = self._out("rev-list", "--topo-order", revisions, "--").split()
        if not shas:
            return []
        out = self._git("cat-file", "--batch", input="".join(f"{s}\n" for s in shas).encode())
        data, found = out.stdout, []
        for sha in shas:
            header, _, data = data.partition(b"\n")
            size = int(header.split()[2])
            raw, data = data[:size], data[size + 1 :]
            head, _, message = raw.partition(b"\n\n")
            fields = dict(line.split(b" ", 1) for line in head.split(b"\n") if b" " in line)
            parents = [line[7:].decode() for line in head.split(b"\n") if line[:7] == b"parent "]
            paths = (
                self._git(
                    "diff-tree",
                    "-r",
                    "-z",
                    "--no-commit-id",
                    "--name-only",
                    "--no-renames",
                    "--root",
                    sha,
                )
                .stdout.decode("utf-8", "replace")
                .split("\x00")
            )
            found.append(
                LocalCommit(
                    sha=sha,
                    author=_ident(fields.get(b"author", b"")),
                    committer=_ident(fields.get(b"committer", b"")),
                    parents=tuple(parents),
                    message=message.decode("utf-8", "replace"),
                    paths=tuple(p for p in paths if p),
                )
            )
        return found

    # --- commits -----------------------------------------------------------------------------

    def create_commit(
        self,
        files: Mapping[str, bytes | None],
        message: str,
        author: str,
        parent: str | None,
    ) -> str:
        """``parent``'s tree with ``files`` written (None deletes), as a commit; no ref moves."""
        return self.create_chains([[(files, message)]], author, parent)[0][0]

    def create_chains(
        self, chains: Sequence[Sequence[NewCommit]], author: str, parent: str | None
    ) -> list[list[str]]:
        """Commit objects, no ref moved: each chain starts on ``parent``, each of its commits
        on the one before. Returns the shas, chain by chain.

        A pass's commits are built by one ``git fast-import`` (after one ``ls-tree`` of the
        paths at ``parent``, and one ``hash-object`` per path git filters), so the number of
        git processes does not grow with the number of commits. With commit signing configured
        each commit goes through ``commit-tree -S`` instead: fast-import cannot sign.
        Author and committer are both ``author``.
        """
        name, email = parse_author(author)
        normal = [
            [
                ({_repo_path(p): content for p, content in files.items()}, message)
                for files, message in chain
            ]
            for chain in chains
        ]
        paths = sorted({p for chain in normal for files, _ in chain for p in files})
        if not paths and not any(normal):
            return [[] for _ in normal]
        self.learn_attributes(paths)
        at_parent = self._check_tree(parent, [files for chain in normal for files, _ in chain])
        filtered = self._hash_filtered(normal)
        algorithm = "sha256" if parent is not None and len(parent) == 64 else "sha1"
        for chain in normal:
            _refuse_empty(chain, at_parent, filtered, parent, algorithm)
        if self.signing_configured():
            return [
                self._plumbing_chain(chain, name, email, parent, at_parent, filtered)
                for chain in normal
            ]
        return self._fast_import(normal, name, email, parent, at_parent, filtered)

    def _fast_import(
        self,
        chains: Sequence[Sequence[tuple[dict[str, bytes | None], str]]],
        name: str,
        email: str,
        parent: str | None,
        at_parent: Mapping[str, tuple[str, str]],
        filtered: Mapping[tuple[str, bytes], str],
    ) -> list[list[str]]:
        """Every chain in one ``git fast-import`` stream.

        Commits go on a scratch ref that the stream deletes again before it ends, so no ref
        is ever written; ``get-mark`` reports each commit's sha. ``feature done`` makes a
        stream cut short fail instead of importing half of it.
        """
        author_date, committer_date = self._dates(name, email)
        ref = b"refs/streamlock/build"
        out = [b"feature done\n"]
        mark = 0
        marks: list[list[int]] = []
        for chain in chains:
            out.append(b"reset " + ref + b"\n\n")
            numbers = []
            for index, (files, message) in enumerate(chain):
                mark += 1
                numbers.append(mark)
                text = (message if message.endswith("\n") else message + "\n").encode()
                out.append(b"commit %s\nmark :%d\n" % (ref, mark))
                out.append(f"author {name} <{email}> {author_date}\n".encode())
                out.append(f"committer {name} <{email}> {committer_date}\n".encode())
                out.append(b"data %d\n%s\n" % (len(text), text))
                if index > 0:
                    out.append(b"from :%d\n" % (mark - 1))
                elif parent is not None:
                    out.append(f"from {parent}\n".encode())
                for path in sorted(files):
                    content, quoted = files[path], _quote(path)
                    if content is None:
                        out.append(b"D " + quoted + b"\n")
                        continue
                    mode = at_parent.get(path, ("100644", ""))[0].encode()
                    blob = filtered.get((path, content))
                    if blob is not None:
                        out.append(b"M %s %s %s\n" % (mode, blob.encode(), quoted))
                    else:
                        out.append(b"M %s inline %s\ndata %d\n" % (mode, quoted, len(content)))
                        out.append(content)
                        out.append(b"\n")
                out.append(b"\n")
            marks.append(numbers)
        out.extend(b"get-mark :%d\n" % n for n in range(1, mark + 1))
        out.append(b"reset " + ref + b"\n\ndone\n")
        result = self._git("fast-import", "--quiet", "--date-format=raw", input=b"".join(out))
        shas = result.stdout.decode().split()
        if len(shas) != mark:
            raise GitError(f"git fast-import reported {len(shas)} commits of {mark}")
        return [[shas[n - 1] for n in numbers] for numbers in marks]

    def _dates(self, name: str, email: str) -> tuple[str, str]:
        """Author and committer dates as ``commit-tree`` would take them: now, unless
        ``GIT_AUTHOR_DATE`` or ``GIT_COMMITTER_DATE`` says otherwise (then git parses it)."""
        now = time.time()
        offset = time.localtime(now).tm_gmtoff
        local = f"{int(now)} {'-' if offset < 0 else '+'}{abs(offset) // 3600:02d}"
        local += f"{abs(offset) % 3600 // 60:02d}"
        dates = []
        for who in ("AUTHOR", "COMMITTER"):
            if not os.environ.get(f"GIT_{who}_DATE"):
                dates.append(local)
                continue
            identity = {f"GIT_{who}_NAME": name, f"GIT_{who}_EMAIL": email}
            ident = self._git("var", f"GIT_{who}_IDENT", env=identity).stdout.decode().strip()
            dates.append(" ".join(ident.rsplit(" ", 2)[-2:]))
        return dates[0], dates[1]

    def _plumbing_chain(
        self,
        chain: Sequence[tuple[dict[str, bytes | None], str]],
        name: str,
        email: str,
        parent: str | None,
        at_parent: Mapping[str, tuple[str, str]],
        filtered: Mapping[tuple[str, bytes], str],
    ) -> list[str]:
        """A chain built commit by commit with ``commit-tree`` (the signing path)."""
        shas = []
        for files, message in chain:
            parent = self._plumbing_commit(files, message, name, email, parent, at_parent, filtered)
            shas.append(parent)
        return shas

    def _plumbing_commit(
        self,
        files: Mapping[str, bytes | None],
        message: str,
        name: str,
        email: str,
        parent: str | None,
        at_parent: Mapping[str, tuple[str, str]],
        filtered: Mapping[tuple[str, bytes], str],
    ) -> str:
        scratch = self._scratch_dir()
        index_env = {"GIT_INDEX_FILE": str(scratch / "index")}
        # A chain of commits (one per stream in a pass) builds each on the index the previous one
        # left: one read-tree per chain instead of one per commit.
        if self._scratch_commit is None or self._scratch_commit[0] != parent:
            if parent is None:
                self._git("read-tree", "--empty", env=index_env)
            else:
                self._git("read-tree", f"{parent}^{{tree}}", env=index_env)
        self._scratch_commit = None  # until this commit exists, the index is no known tree
        paths = sorted(files)
        written = {p: c for p in paths if (c := files[p]) is not None}
        blobs = self._write_blobs(written, filtered, scratch)
        entries = [
            f"{at_parent.get(p, ('100644', ''))[0]} {blobs[p]}\t{p}"
            if p in blobs
            else f"0 {_ZERO}\t{p}"
            for p in paths
        ]
        self._git(
            "update-index",
            "-z",
            "--index-info",
            input="".join(f"{e}\x00" for e in entries).encode(),
            env=index_env,
        )
        tree = self._git("write-tree", env=index_env).stdout.decode().strip()
        identity = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        args = ["commit-tree", "-S", tree, *(["-p", parent] if parent else []), "-F", "-"]
        text = message if message.endswith("\n") else message + "\n"
        sha = self._git(*args, input=text.encode(), env=identity).stdout.decode().strip()
        self._scratch_commit = (sha, tree)
        return sha

    def _scratch_dir(self) -> Path:
        """A private directory for this object's scratch index and blob files, removed with it."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="streamlock-index-"))
            weakref.finalize(self, shutil.rmtree, self._scratch, True)
        return self._scratch

    def learn_attributes(self, paths: Iterable[str]) -> None:
        """Find out, in one process, which of ``paths`` git would filter when hashing them.

        The commit builder asks once for every path of a pass, so only the paths git filters
        need a ``hash-object`` process of their own.
        """
        unknown = sorted({_repo_path(p) for p in paths} - set(self._filtered))
        if not unknown:
            return
        if self._autocrlf is None:
            result = self._git("config", "--get", "core.autocrlf", check=False)
            self._autocrlf = result.stdout.decode().strip().lower() in ("true", "input")
        out = self._git("check-attr", "-z", "--stdin", *_FILTER_ATTRIBUTES, input=_z(unknown))
        fields = out.stdout.decode("utf-8", "surrogateescape").split("\x00")
        filtered = {p: self._autocrlf for p in unknown}
        for path, _attribute, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False):
            if value not in ("unspecified", "unset", ""):
                filtered[path] = True
        self._filtered.update(filtered)

    def _hash_filtered(
        self, chains: Sequence[Sequence[tuple[dict[str, bytes | None], str]]]
    ) -> dict[tuple[str, bytes], str]:
        """Blob ids of the contents written to paths git filters, written to the object store
        one ``hash-object --path`` each, so ``.gitattributes`` (eol, LFS, ...) and
        ``core.autocrlf`` apply to them exactly as to a person's commit."""
        found: dict[tuple[str, bytes], str] = {}
        for chain in chains:
            for files, _ in chain:
                for path, content in files.items():
                    if content is None or (path, content) in found:
                        continue
                    if self._filtered.get(path) is not False:
                        out = self._git(
                            "hash-object", "-w", "--stdin", "--path", path, input=content
                        )
                        found[(path, content)] = out.stdout.decode().strip()
        return found

    def _write_blobs(
        self,
        contents: Mapping[str, bytes],
        filtered: Mapping[tuple[str, bytes], str],
        scratch: Path,
    ) -> dict[str, str]:
        """Blob ids of ``contents``, written to the object store: those of filtered paths are
        known already, the others go through one ``hash-object --no-filters --stdin-paths``."""
        blobs = {p: filtered[(p, c)] for p, c in contents.items() if (p, c) in filtered}
        plain = [p for p in contents if p not in blobs]
        if plain:
            names = []
            for number, path in enumerate(plain):
                name = scratch / f"blob-{number}"
                name.write_bytes(contents[path])
                names.append(str(name))
            out = self._git(
                "hash-object", "-w", "--no-filters", "--stdin-paths", input=_lines(names)
            ).stdout.split()
            blobs.update(zip(plain, (sha.decode() for sha in out), strict=True))
        return blobs

    def _check_tree(
        self, rev: str | None, commits: Sequence[Mapping[str, bytes | None]]
    ) -> dict[str, tuple[str, str]]:
        """``path -> (mode, blob id)`` of the files that exist at ``rev`` (an executable stays
        executable), in one ``ls-tree`` for all ``commits``.

        Refuses what ``update-index`` or fast-import would silently turn around: writing over a
        directory, a symlink or a submodule, or below something that is not a directory, and
        deleting a directory (fast-import would delete all of it).
        """
        paths: set[str] = set()
        written: set[str] = set()
        dirs: set[str] = set()
        for files in commits:
            mine = {p for p, content in files.items() if content is not None}
            parents = {str(d) for p in mine for d in PurePosixPath(p).parents if str(d) != "."}
            for path in sorted(mine & parents):
                raise InputError(f"refusing to write {path}: it is also a directory in this commit")
            paths.update(files)
            written |= mine
            dirs |= parents
        if rev is None or not paths:
            return {}
        out = self._git(
            "--literal-pathspecs", "ls-tree", "-z", "--full-tree", rev, "--", *sorted(paths | dirs)
        ).stdout
        found = {}
        for record in out.split(b"\x00"):
            if not record:
                continue
            meta, _, raw = record.partition(b"\t")
            path = raw.decode("utf-8", "replace")
            mode, _kind, blob = (field.decode() for field in meta.split())
            if path in dirs and mode != "040000":
                raise InputError(f"refusing to write below {path}: it is not a directory")
            if path in written and mode not in ("100644", "100755"):
                raise InputError(f"refusing to write {path}: it is not a regular file")
            if path in paths - written and mode == "040000":
                raise InputError(f"refusing to delete {path}: it is a directory")
            found[path] = (mode, blob)
        return found

    def _check_worktree(self, path: str) -> Path:
        """The file's location in the working tree; refuses symlinks on the way."""
        target = self.root
        parts = PurePosixPath(path).parts
        for depth, part in enumerate(parts, start=1):
            target = target / part
            if target.is_symlink():
                raise InputError(
                    f"refusing to write {path}: {target.relative_to(self.root)} is a symlink"
                )
            if depth < len(parts) and target.exists() and not target.is_dir():
                raise InputError(f"refusing to write {path}: {'/'.join(parts[:depth])} is a file")
        if target.is_dir():
            raise InputError(f"refusing to write {path}: it is a directory")
        return target

    def commit(self, files: Mapping[str, bytes | None], message: str, author: str) -> str:
        """Commit exactly ``files`` (None deletes) on the current branch; returns the sha."""
        return self.commit_chain([(files, message)], author)[-1]

    def commit_chain(self, commits: Sequence[NewCommit], author: str) -> list[str]:
        """Commit each ``(files, message)`` in turn on the current branch; returns the shas.

        Each commit changes exactly its files (None deletes); author and committer are both
        ``author``. The commits are built without touching the branch, which then moves once
        (compare and swap), and the working tree and the index follow for the paths touched:
        a constant number of git processes however many commits. A journal in
        ``.git/streamlock/`` spans the moment the branch and the checkout disagree, so a run
        killed there is finished by ``heal`` instead of looking like a person's edit that
        reverts the bumps.
        """
        if not commits:
            return []
        final: dict[str, bytes | None] = {}
        for files, _ in commits:
            final.update({_repo_path(p): content for p, content in files.items()})
        targets = {path: self._check_worktree(path) for path in final}
        old = self.head()
        shas = self.create_chains([commits], author, old)[0]
        new = shas[-1]
        subject = commits[0][1].strip().split("\n", 1)[0]
        more = f" (and {len(shas) - 1} more)" if len(shas) > 1 else ""
        with self._journal("commit", old, new, sorted(targets)):
            self._git("update-ref", "-m", f"commit: {subject}{more}", "HEAD", new, old or _ZERO)
            try:
                for path, target in targets.items():
                    _write_worktree(target, final[path])
            except OSError as exc:
                raise GitError(
                    f"committed {new[:12]} but could not update the working tree: {exc}",
                    hint="the next run finishes it; 'git status' shows what is missing",
                ) from exc
            self._git("update-index", "--add", "--remove", "-z", "--stdin", input=_z(targets))
        return shas

    def tree(self, rev: str) -> str:
        """The tree id of ``rev``: equal trees mean equal content, whatever the commit dates."""
        return self._out("rev-parse", f"{rev}^{{tree}}")

    def reset_hard(self, rev: str = "HEAD") -> None:
        """Move the branch and the working tree to ``rev``; callers use it on their own clone."""
        self._git("reset", "--quiet", "--hard", rev)

    def clean_untracked(self) -> None:
        """Delete every untracked file and directory but ignored ones (the daemon's own clone)."""
        self._git("clean", "-ffdq")

    def checkout_branch(self, branch: str) -> None:
        """Check out ``branch``, created or moved to HEAD (after a reset on the daemon's clone)."""
        self._git("checkout", "--quiet", "-B", branch)

    def index_readable(self) -> bool:
        """Whether git can read the index (a kill while it was written can leave it torn)."""
        return self._git("ls-files", "--stage", check=False).returncode == 0

    def reset_keep(self, rev: str) -> None:
        """Move the branch to ``rev`` keeping unrelated local edits; fails rather than lose any."""
        old = self.head()
        paths = self._out("diff", "--name-only", "-z", old, rev).split("\x00") if old else []
        with self._journal("reset", old, rev, [p for p in paths if p]):
            self._git("reset", "--quiet", "--keep", rev)

    # --- surviving a killed run ----------------------------------------------------------------

    @contextlib.contextmanager
    def run_lock(self, wait: float = RUN_LOCK_WAIT) -> Iterator[bool]:
        """Hold this checkout for one run; a second run waits up to ``wait`` seconds, then fails.

        An ``flock`` dies with its process, so a killed run never leaves it held. The file holds
        the owner's pid while a run is inside; finding it non-empty means the last run was
        killed, and the value yielded is True so the caller heals what it left.
        """
        path = self.git_dir / "streamlock" / "run.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise GitError(f"cannot lock the checkout: {path}: {exc.strerror}") from exc
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                        raise GitError(
                            f"another streamlock run ({owner or 'pid unknown'}) is working in "
                            f"{self.root}",
                            hint="runs on one checkout never overlap; try again when it ends",
                        ) from None
                    time.sleep(0.1)
            crashed = bool(os.pread(fd, 64, 0).strip())
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
            except OSError as exc:
                raise GitError(f"cannot lock the checkout: {path}: {exc.strerror}") from exc
            try:
                yield crashed
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the flock

    @contextlib.contextmanager
    def _journal(self, op: str, old: str | None, new: str, paths: Sequence[str]) -> Iterator[None]:
        path = self.git_dir / JOURNAL
        tmp = path.with_name(f".{path.name}.tmp")
        data = {"op": op, "old": old, "new": new, "paths": list(paths)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise GitError(f"cannot write {path}: {exc.strerror}") from exc
        yield
        path.unlink(missing_ok=True)

    def heal(
        self, crashed: bool, remote: str | None = None, branch: str | None = None
    ) -> list[str]:
        """Finish what a killed run left half done; returns the repaired paths (for the log).

        With a journal, the paths it names are brought to HEAD in the working tree and the
        index, but only where they still hold one of the two versions the run was moving
        between (or a temporary file of ours): anything else is a person's edit and stays.
        ``crashed`` (the last run died) also clears git's lock files in the places a run
        writes, once no orphaned git process of that run still holds them.
        """
        journal = self._read_journal()
        if not crashed and journal is None:
            return []
        self._clear_stale_locks(remote, branch)
        repaired: list[str] = []
        if journal is not None:
            head = self.head()
            old, new, paths = journal
            if head is not None and head in (old, new):
                repaired = self._restore(head, [p for p in (old, new) if p], paths)
            (self.git_dir / JOURNAL).unlink(missing_ok=True)
        return repaired

    def _read_journal(self) -> tuple[str | None, str, list[str]] | None:
        path = self.git_dir / JOURNAL
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            old, new, paths = data["old"], data["new"], data["paths"]
            if not isinstance(new, str) or not isinstance(paths, list):
                raise TypeError
            return old, new, [_repo_path(str(p)) for p in paths]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, InputError):
            path.unlink(missing_ok=True)  # torn journal: written before any ref moved
            return None

    def _restore(self, head: str, revisions: Sequence[str], paths: Sequence[str]) -> list[str]:
        restored = []
        for path in paths:
            target = self.root / path
            tmp = _tmp_path(target)
            had_tmp = tmp.exists()
            tmp.unlink(missing_ok=True)
            want = self.read(path, head)
            try:
                current = None if not target.is_file() else target.read_bytes()
            except OSError:
                continue
            known = {self.read(path, rev) for rev in revisions}
            if current != want and (current in known or had_tmp):
                try:
                    _write_worktree(self._check_worktree(path), want)
                except (OSError, InputError):
                    continue
                restored.append(path)
        if paths:
            # Index entries of these paths back to HEAD's (removed where HEAD has none).
            self._git("--literal-pathspecs", "reset", "--quiet", head, "--", *paths)
        return restored

    def _clear_stale_locks(self, remote: str | None, branch: str | None) -> None:
        """Remove git lock files a killed run left where a run writes."""
        names = ["index.lock", "HEAD.lock", "packed-refs.lock"]
        with contextlib.suppress(GitError):
            names.append(f"refs/heads/{branch or self.branch()}.lock")
        if remote and branch:
            names.append(f"refs/remotes/{remote}/{branch}.lock")
        present = [self.git_dir / n for n in names if (self.git_dir / n).exists()]
        deadline = time.monotonic() + _STALE_LOCK_WAIT
        while present and time.monotonic() < deadline:
            time.sleep(0.05)
            present = [p for p in present if p.exists()]
        for lock in present:
            lock.unlink(missing_ok=True)

    # --- remotes -----------------------------------------------------------------------------

    def fetch(self, remote: str, branch: str) -> str:
        """Fetch ``branch`` into ``refs/remotes/<remote>/<branch>``; returns its sha."""
        tracking = f"refs/remotes/{remote}/{branch}"
        result = self._git(
            "fetch",
            "--quiet",
            "--no-tags",
            remote,
            f"+refs/heads/{branch}:{tracking}",
            network=True,
            check=False,
        )
        if result.returncode != 0:
            text = result.stderr.decode("utf-8", "replace")
            if "couldn't find remote ref" in text:
                raise GitError(
                    f"{redact(remote)} has no branch {branch!r}",
                    hint=f"push it once ('git push -u {remote} {branch}') or set git.branch",
                )
            raise GitError(f"git fetch from {redact(remote)} failed: {_stderr(result)}")
        return self._out("rev-parse", "--verify", tracking)

    def remote_sha(self, remote: str, branch: str) -> str | None:
        """Where ``branch`` is on the remote now (for a lease), or None if it does not exist."""
        out = self._out("ls-remote", "--refs", remote, f"refs/heads/{branch}")
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    def push(self, remote: str, branch: str, refspec: str | None = None) -> bool:
        """Push HEAD (or ``refspec``) to ``branch``; False if the remote moved on. Never forces."""
        spec = refspec or f"HEAD:refs/heads/{branch}"
        if spec.startswith("+"):
            raise InputError(f"refusing to force-push {spec!r}")
        return self._push(remote, spec)

    def push_branch(
        self,
        remote: str,
        local_sha: str,
        branch_name: str,
        force_with_lease_expected: str | None,
    ) -> bool:
        """Set a bot-owned review branch to ``local_sha`` if it is still where we last saw it.

        ``force_with_lease_expected`` None means the branch must not exist yet. Returns False when
        the lease does not hold. Only ``streamlock/`` branches may be rewritten this way.
        """
        if not branch_name.startswith(REVIEW_PREFIX):
            raise InputError(
                f"refusing to rewrite branch {branch_name!r}",
                hint=f"only {REVIEW_PREFIX}* review branches are bot-owned",
            )
        ref = f"refs/heads/{branch_name}"
        lease = f"--force-with-lease={ref}:{force_with_lease_expected or ''}"
        return self._push(remote, f"{local_sha}:{ref}", lease)

    def _push(self, remote: str, spec: str, *options: str) -> bool:
        result = self._git("push", "--porcelain", *options, remote, spec, network=True, check=False)
        if result.returncode == 0:
            return True
        out = result.stdout.decode("utf-8", "replace").splitlines()
        if any(_REJECTED_RE.match(line) for line in out):
            return False
        refs = [line.split("\t")[-1] for line in out if line.startswith("!\t")]
        said = [
            line.removeprefix("remote:").strip()
            for line in result.stderr.decode("utf-8", "replace").splitlines()
            if line.startswith("remote:") and line.removeprefix("remote:").strip()
        ]
        detail = "; ".join(refs + said[-3:]) or _stderr(result)
        raise GitError(f"git push to {redact(remote)} failed: {redact(detail)}")


@dataclass(frozen=True, slots=True)
class LocalCommit:
    """A commit as recovery needs it: who made it, what it says, which paths it touched."""

    sha: str
    author: tuple[str, str]  # (name, email)
    committer: tuple[str, str]
    parents: tuple[str, ...]
    message: str
    paths: tuple[str, ...]

    @property
    def subject(self) -> str:
        return self.message.strip().split("\n", 1)[0]


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """A commit message with who wrote it and git's verdict on its signature (``%G?``)."""

    sha: str
    author: tuple[str, str]
    committer: tuple[str, str]
    signature: str  # G good and allowed, N none, B bad, U unknown validity, E cannot check, ...
    message: str


def _ident(line: bytes) -> tuple[str, str]:
    """``Name <email> 1700000000 +0000`` → ``(name, email)``."""
    text = line.decode("utf-8", "replace")
    name, _, rest = text.partition("<")
    return name.strip(), rest.partition(">")[0].strip()


def _tmp_path(target: Path) -> Path:
    """Beside the target, and short: a 245-character stream's lock name is 255 bytes already."""
    digest = hashlib.sha256(target.name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return target.with_name(f".streamlock-{digest}.tmp")


def _write_worktree(target: Path, content: bytes | None) -> None:
    """Replace a file atomically (None deletes it)."""
    if content is None:
        target.unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(target)
    tmp.write_bytes(content)
    tmp.replace(target)


def _lines(names: Sequence[str]) -> bytes:
    return "".join(f"{n}\n" for n in names).encode()


def _z(paths: Mapping[str, object] | Sequence[str]) -> bytes:
    return "".join(f"{p}\x00" for p in paths).encode()


def _quote(path: str) -> bytes:
    """A path as fast-import reads it: C-style quoted (control characters never get here)."""
    return b'"' + path.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _blob_id(content: bytes, algorithm: str) -> str:
    """The id git gives ``content`` stored unfiltered."""
    return hashlib.new(algorithm, b"blob %d\x00%b" % (len(content), content)).hexdigest()


def _refuse_empty(
    chain: Sequence[tuple[Mapping[str, bytes | None], str]],
    at_parent: Mapping[str, tuple[str, str]],
    filtered: Mapping[tuple[str, bytes], str],
    parent: str | None,
    algorithm: str,
) -> None:
    """GitError for a commit of the chain that would change nothing (as ``commit`` refuses)."""
    state: dict[str, str | None] = {path: blob for path, (_, blob) in at_parent.items()}
    for index, (files, _message) in enumerate(chain):
        changed = False
        for path, content in files.items():
            blob = None
            if content is not None:
                blob = filtered.get((path, content)) or _blob_id(content, algorithm)
            if state.get(path) != blob:
                changed, state[path] = True, blob
        if not changed and (parent is not None or index > 0):
            raise GitError("nothing to commit: the files already hold these contents")


# --- the trailer index ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scan:
    """What the last refresh did: full or incremental, and how many bot commits it read."""

    head: str | None
    full: bool
    commits: int


class _Counted(Iterator[tuple[str, str]]):
    """An iterator that counts what it gave (for :class:`Scan`), so it need not be a list."""

    def __init__(self, items: Iterator[tuple[str, str]]) -> None:
        self._items = items
        self.count = 0

    def __next__(self) -> tuple[str, str]:
        item = next(self._items)
        self.count += 1
        return item


class TrailerIndex:
    """Bases of the revert rule from ``git log``, cached in ``.git/streamlock/``.

    One ``git log`` process reads every reconciler commit message (``--grep`` keeps the others
    out). The cache holds the summary at some head; when that head is an ancestor of HEAD only
    the newer commits are read and laid over it, otherwise (rewritten history, another branch)
    everything is read again. Order is ``--topo-order``: a merged review branch's commits count
    as newer than the commits they were merged onto.

    Trailers are trusted only from the reconciler: with ``author`` given, only commits authored
    by that identity count (the committer may differ: a forge's rebase merge re-commits them);
    with signing configured (``gpg.format ssh`` and ``user.signingkey``, or
    ``gpg.ssh.allowedSignersFile`` where only verifying), only commits whose signature git
    verifies against the allowed signers. Anyone can type the trailer lines; not everyone can
    sign.
    """

    CACHE = Path("streamlock") / "trailer-index.json"
    # 3: only the reconciler's own (and, when signing, verified) commits count
    VERSION = 3

    def __init__(self, repo: GitRepo, author: str | None = None) -> None:
        self.repo = repo
        self.path = repo.git_dir / self.CACHE
        self.author = parse_author(author) if author is not None else None
        self._head: str | None = None
        self._summary = trailers.TrailerSummary()
        self.last_scan: Scan | None = None

    def trusted(self, revisions: str) -> list[tuple[str, str]]:
        """``(sha, message)`` of the commits in ``revisions`` whose trailers may count."""
        return list(self._trusted(revisions))

    def _trusted(self, revisions: str) -> _Counted:
        """:meth:`trusted` as git prints them: a year of history is never held at once."""
        signed = self.repo.signing_configured() or self.repo.verification_configured()
        return _Counted(
            (commit.sha, commit.message)
            for commit in self.repo.iter_signed_messages(revisions, grep=f"{trailers.TAG_KEY}:")
            if (self.author is None or commit.author == self.author)
            and (not signed or commit.signature == "G")
        )

    def _mode(self) -> str:
        """What the cached summary was computed under: the author and whether signed."""
        who = "" if self.author is None else f"{self.author[0]} <{self.author[1]}>"
        signed = self.repo.signing_configured() or self.repo.verification_configured()
        return f"{who}|{'signed' if signed else 'unsigned'}"

    def bases(self) -> Mapping[tuple[str, str], str]:
        """``(tag, source) -> digest`` of the newest reconciler commit for that pair, at HEAD.

        Read on first use: the planner asks for a base only for a due tag whose source serves
        a digest other than its pin, so a pass with nothing due or nothing new never reads
        history (in a fresh clone that is a ``git log`` over every commit).
        """
        return _LazyBases(self)

    def last_commits(self) -> dict[str, tuple[str, str]]:
        """``tag -> (sha, digest)`` of the newest reconciler commit for each tag, at HEAD."""
        return dict(self.refresh().last)

    def refresh(self) -> trailers.TrailerSummary:
        """Bring the summary up to HEAD, reading as few commits as the cache allows."""
        head = self.repo.head()
        if head is None:
            self._head, self._summary = None, trailers.TrailerSummary()
            self.last_scan = Scan(head=None, full=True, commits=0)
            return self._summary
        if head == self._head:
            return self._summary
        cached_head, cached = self._load()
        if cached_head == head:
            self._head, self._summary = head, cached
            self.last_scan = Scan(head=head, full=False, commits=0)
            return cached
        if cached_head is not None and self.repo.is_ancestor(cached_head, head):
            commits = self._trusted(f"{cached_head}..{head}")
            summary = trailers.summarize(commits).over(cached)
            full = False
        else:
            commits = self._trusted(head)
            summary = trailers.summarize(commits)
            full = True
        self._head, self._summary = head, summary
        self.last_scan = Scan(head=head, full=full, commits=commits.count)
        self._store(head, summary)
        return summary

    def _load(self) -> tuple[str | None, trailers.TrailerSummary]:
        """The cached head and summary; anything unreadable counts as no cache."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if (
                data.get("version") != self.VERSION
                or data.get("mode") != self._mode()
                or not isinstance(data.get("head"), str)
            ):
                return None, trailers.TrailerSummary()
            bases = {(str(t), str(s)): str(i) for t, s, i in data["bases"]}
            last = {str(t): (str(sha), str(i)) for t, sha, i in data["last"]}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None, trailers.TrailerSummary()
        return data["head"], trailers.TrailerSummary(bases=bases, last=last)

    def _store(self, head: str, summary: trailers.TrailerSummary) -> None:
        """Write the cache atomically; a cache that cannot be written is only a slower start."""
        data = {
            "version": self.VERSION,
            "mode": self._mode(),
            "head": head,
            "bases": sorted([t, s, i] for (t, s), i in summary.bases.items()),
            "last": sorted([t, sha, i] for t, (sha, i) in summary.last.items()),
        }
        cachefile.write_text(self.path, json.dumps(data, indent=0, sort_keys=True), "trailer index")


class _LazyBases(Mapping[tuple[str, str], str]):
    """The index's bases, refreshed when first looked at and then fixed for this mapping."""

    def __init__(self, index: TrailerIndex) -> None:
        self._index = index
        self._bases: Mapping[tuple[str, str], str] | None = None

    def _loaded(self) -> Mapping[tuple[str, str], str]:
        if self._bases is None:
            self._bases = dict(self._index.refresh().bases)
        return self._bases

    def __getitem__(self, key: tuple[str, str]) -> str:
        return self._loaded()[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return "<bases, not read yet>" if self._bases is None else repr(self._bases)
