"""What every ``streamlock`` command shares: finding the repository, common options, tables,
messages for people, CI output formats and exit codes.

Command modules (``cli``, ``cli_streams``, ``cli_repo``, ``cli_access``) import from here, and
only ``cli`` imports the command modules to register them, so imports flow one way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from reconciler.config import CONFIG_FILE
from reconciler.errors import InputError, Problem, StreamlockError
from reconciler.trailers import one_line

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_USAGE = 64


def find_repo(start: Path) -> Path:
    """Walk up to the directory holding ``streamlock.yaml`` or ``streams/``, not past Git's top."""
    current = start.resolve()
    for candidate in (current, *current.parents):
        if (candidate / CONFIG_FILE).is_file() or (candidate / "streams").is_dir():
            return candidate
        if (candidate / ".git").exists():
            break
    return current


def repo_option(func: Any) -> Any:
    return click.option(
        "--repo",
        "repo",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="STREAMLOCK_REPO",
        help="Config repository (default: walk up from the current directory).",
    )(func)


def output_option(func: Any) -> Any:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["table", "json", "yaml"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)


def complete_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of stream and tag names (``ns/stream``, ``ns/stream:tag``), read from
    the stream files of the repository the command line names; nothing when there is none."""
    from click.shell_completion import CompletionItem

    from reconciler.config import load_config
    from reconciler.imagestream import load_streams

    try:
        root = resolve_repo(ctx.params.get("repo"))
        streams = load_streams(root, load_config(root)).streams
    except StreamlockError:
        return []
    names = []
    for stream in streams:
        names.append(f"{stream.namespace}/{stream.name}")
        names += [f"{stream.namespace}/{stream.name}:{tag.name}" for tag in stream.tags]
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def is_config_repo(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() or (path / "streams").is_dir()


def resolve_repo(repo: Path | None) -> Path:
    """The config repository: ``--repo``, else found walking up from the current directory.

    A directory with neither ``streamlock.yaml`` nor ``streams/`` is an error with a hint, so
    a wrong directory never reads as "nothing to do".
    """
    root = repo if repo is not None else find_repo(Path.cwd())
    if is_config_repo(root):
        return root
    where = f"--repo {root}" if repo is not None else f"{root} (or any directory above it)"
    hint = "run it in a config repository, pass --repo DIR, or start one with 'streamlock init'"
    for parent in root.resolve().parents:
        if is_config_repo(parent):
            hint = f"the config repository is {parent}: pass --repo {parent}"
            break
        if (parent / ".git").exists():
            break
    raise InputError(f"{where} has no {CONFIG_FILE} and no streams/ directory", hint=hint)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], no_header: bool = False) -> str:
    """Plain padded columns with upper-case headers, as ``flux get`` prints."""
    lines = [list(headers)] if not no_header else []
    lines.extend([list(r) for r in rows])
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines
    )


def printable(text: str) -> str:
    """``text`` on one line: control characters, separators and lone surrogates escaped."""
    return one_line(text, limit=len(text) * 10 + 1)


def _workflow_escape(text: str, *, property_value: bool) -> str:
    """GitHub's escaping of workflow command data (and, for properties, ``:`` and ``,``)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return printable(text)


def github_annotation(problem: Problem) -> str:
    """``::error file=…,line=…,col=…::message`` with the path and message escaped."""
    path = _workflow_escape(problem.path, property_value=True)
    message = _workflow_escape(problem.message, property_value=False)
    return f"::error file={path},line={problem.line},col={problem.column}::{message}"


def gitlab_issue(problem: Problem) -> dict[str, Any]:
    """One GitLab Code Quality issue; JSON escapes every control character by itself."""
    text = str(problem).encode("utf-8", "backslashreplace")
    return {
        "description": problem.message,
        "check_name": "streamlock-validate",
        "fingerprint": hashlib.sha256(text).hexdigest(),
        "severity": "major",
        "location": {"path": problem.path, "lines": {"begin": problem.line}},
    }


def notify(text: str, *, fmt: str | None = None) -> None:
    """A message for people on stderr; with ``--log-format json`` a JSON line like the logs,
    so stderr holds one format a log collector can read."""
    if fmt is None:
        ctx = click.get_current_context(silent=True)
        fmt = ctx.find_root().params.get("log_format", "auto") if ctx is not None else "auto"
    if fmt != "json":
        click.echo(text, err=True)
        return
    level = "error" if text.startswith("✗") else "warning" if text.startswith("!") else "info"
    moment = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    line = {"ts": moment, "level": level, "msg": text.strip()}
    click.echo(json.dumps(line, ensure_ascii=False), err=True)
