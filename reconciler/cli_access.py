"""Commands for who may change what: ``codeowners`` and ``check-access`` (for pull requests).

Thin: Git is read here (through :class:`~reconciler.gitrepo.GitRepo`), the rules live in
:mod:`reconciler.access`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.access import codeowners, rules
from reconciler.config import CONFIG_FILE, load_config, parse_config
from reconciler.console import (
    EXIT_ERROR,
    github_annotation,
    printable,
    repo_option,
    resolve_repo,
)
from reconciler.errors import GitError, InputError
from reconciler.gitrepo import GitRepo, LocalCommit, parse_author
from reconciler.lockfile import LOCKS_DIR

FORMATS = ("text", "github", "gitlab", "json")


# --- codeowners ----------------------------------------------------------------------------------


def _inside(root: Path, relative: str) -> Path:
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise InputError(f"{relative}: outside the repository", hint="name a path inside it")
    return target


def _write(target: Path, text: str) -> None:
    """All or nothing: a temporary file next to the target, then one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {target}: {exc.strerror}") from exc


@click.command("codeowners")
@click.option("--check", is_flag=True, help="Exit 1 when the file is out of date (for CI).")
@click.option(
    "--flavor",
    type=click.Choice(codeowners.FLAVORS),
    default=codeowners.GITHUB,
    show_default=True,
    help="The forge whose CODEOWNERS syntax and place to use.",
)
@click.option(
    "--file",
    "relative",
    metavar="PATH",
    help="Where the file lives (default: .github/CODEOWNERS or .gitlab/CODEOWNERS).",
)
@repo_option
def codeowners_command(check: bool, flavor: str, relative: str | None, repo: Path | None) -> None:
    """Write CODEOWNERS from access: in streamlock.yaml.

    streams/<ns>/ is owned by the namespace's owners, locks/ by the bot (git.author), and
    streamlock.yaml by configOwners.
    """
    root = resolve_repo(repo)
    config = load_config(root)
    relative = relative or codeowners.DEFAULT_PATHS[flavor]
    target = _inside(root, relative)
    wanted = codeowners.render(config, flavor, relative)
    try:
        current: str | None = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{relative}: cannot read: {exc}") from exc
    if check:
        problems = codeowners.differences(relative, current, wanted)
        for problem in problems:
            click.echo(printable(str(problem)))
        if problems:
            click.echo(f"✗ {relative} is out of date", err=True)
            sys.exit(EXIT_ERROR)
        click.echo(f"✓ {relative} is up to date", err=True)
        return
    if current is not None and not codeowners.is_generated(current):
        raise InputError(
            f"{relative}:1:1: written by hand (it lacks the line {codeowners.HEADER!r})",
            hint="move its owners into access: in streamlock.yaml and delete it, or use --file",
        )
    if current == wanted:
        click.echo(f"✓ {relative} is up to date", err=True)
        return
    _write(target, wanted)
    click.echo(f"✓ wrote {relative}", err=True)


# --- check-access --------------------------------------------------------------------------------


def _signature(git: GitRepo, sha: str) -> str:
    found = git.signed_messages(f"{sha}^!") if sha else []
    return found[0].signature if found else "N"


def _reverted(git: GitRepo, message: str) -> rules.CommitFacts | None:
    """The commit a ``git revert`` names, as facts; None if it is not there (or is a root)."""
    sha = rules.reverted_sha(message)
    if sha is None:
        return None
    try:
        found = git.commits(f"{sha}^!")
    except GitError:
        return None
    if len(found) != 1:
        return None
    original = found[0]
    return rules.CommitFacts(
        sha=original.sha,
        author=original.author,
        committer=original.committer,
        parents=original.parents,
        message=original.message,
        paths=original.paths,
        signature=_signature(git, original.sha),
    )


def _commit_facts(git: GitRepo, commit: LocalCommit, signature: str) -> rules.CommitFacts:
    merge = len(commit.parents) > 1
    first = commit.parents[0] if commit.parents else None
    paths = tuple(git.diff_paths(first, commit.sha)) if merge and first else commit.paths
    lock_paths = [p for p in paths if p.startswith(f"{LOCKS_DIR}/")]
    locks = {
        path: (git.read(path, first) if first else None, git.read(path, commit.sha))
        for path in lock_paths
    }
    parent_locks = (
        {path: tuple(git.read(path, parent) for parent in commit.parents) for path in lock_paths}
        if merge
        else {}
    )
    reverted = _reverted(git, commit.message) if lock_paths and not merge else None
    exact = False
    if reverted is not None and first is not None and len(reverted.parents) == 1:
        undo = git.patch_id(reverted.sha, reverted.parents[0], list(paths))
        exact = undo is not None and undo == git.patch_id(first, commit.sha, list(paths))
    return rules.CommitFacts(
        sha=commit.sha,
        author=commit.author,
        committer=commit.committer,
        parents=commit.parents,
        message=commit.message,
        paths=tuple(paths),
        signature=signature,
        locks=locks,
        parent_locks=parent_locks,
        reverted=reverted,
        exact_revert=exact,
    )


def read_pull_request(git: GitRepo, base: str, head: str, actor: rules.Actor) -> rules.PullRequest:
    """The facts of a pull request of ``head`` into ``base``; the rules are the base's."""
    base_sha, head_sha = git.resolve_commit(base), git.resolve_commit(head)
    start = git.merge_base(base_sha, head_sha)
    config = parse_config(git.read(CONFIG_FILE, base_sha) or b"", f"{CONFIG_FILE} at {base}")
    changes = tuple(
        rules.FileChange(path, git.read(path, start), git.read(path, head_sha))
        for _, path in git.changed_files(base_sha, head_sha)
        if path == CONFIG_FILE or rules.is_stream_file(path)
    )
    span = f"{base_sha}..{head_sha}"
    signatures = {m.sha: m.signature for m in git.signed_messages(span)}
    commits = tuple(
        _commit_facts(git, commit, signatures.get(commit.sha, "N")) for commit in git.commits(span)
    )
    return rules.PullRequest(
        actor=actor,
        config=config,
        changes=changes,
        commits=commits,
        bot=parse_author(config.git.author),
        signed=git.verification_configured() or git.signing_configured(),
    )


def gitlab_issue(violation: rules.Violation) -> dict[str, Any]:
    """One GitLab Code Quality issue for a violation."""
    problem = violation.problem
    text = f"{violation.rule} {problem}".encode("utf-8", "backslashreplace")
    return {
        "description": problem.message,
        "check_name": f"streamlock-access/{violation.rule}",
        "fingerprint": hashlib.sha256(text).hexdigest(),
        "severity": "major",
        "location": {"path": problem.path, "lines": {"begin": problem.line}},
    }


def emit(violations: list[rules.Violation], fmt: str) -> None:
    if fmt == "github":
        for violation in violations:
            click.echo(github_annotation(violation.problem))
    elif fmt == "gitlab":
        click.echo(json.dumps([gitlab_issue(v) for v in violations], indent=2))
    elif fmt == "json":
        data = [
            {
                "rule": v.rule,
                "path": v.problem.path,
                "line": v.problem.line,
                "column": v.problem.column,
                "message": v.problem.message,
            }
            for v in violations
        ]
        click.echo(json.dumps(data, indent=2))
    else:
        for violation in violations:
            click.echo(printable(f"{violation.problem} [{violation.rule}]"))


@click.command("check-access")
@click.option("--base", required=True, metavar="REV", help="The branch the pull request targets.")
@click.option("--head", required=True, metavar="REV", help="The pull request's head commit.")
@click.option("--actor", required=True, metavar="NAME", help="Who opened the pull request.")
@click.option(
    "--team",
    "teams",
    multiple=True,
    metavar="@ORG/TEAM",
    help="A team the actor belongs to (repeatable); owners may name teams.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@repo_option
def check_access(
    base: str, head: str, actor: str, teams: tuple[str, ...], fmt: str, repo: Path | None
) -> None:
    """Check a pull request against access: in the base's streamlock.yaml.

    Exit 1 with one located message per problem: streams of a namespace the actor does not own,
    a lock edited by hand, a cross-namespace reference without a pullers grant, or a change to
    streamlock.yaml by someone not a config owner. Exit 0 otherwise.
    """
    root = resolve_repo(repo)
    git = GitRepo.open(root)
    request = read_pull_request(git, base, head, rules.Actor(actor, teams))
    violations = rules.check(request)
    emit(violations, fmt)
    if violations:
        count = len(violations)
        click.echo(f"✗ {count} access problem{'s' if count > 1 else ''} found", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(f"✓ {actor} may make these changes", err=True)


COMMANDS: list[click.Command] = [codeowners_command, check_access]
