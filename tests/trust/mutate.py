"""``make mutate``: mutmut over the modules where a bug loses data or trust, one at a time.

Why a driver around ``mutmut run``: mutmut reads its settings only from ``pyproject.toml`` in the
directory it runs in, so one configuration cannot give each module its own fast tests. The driver
stages each module in ``.mutate/<module>/`` (symlinks to the sources and tests, and a
``pyproject.toml`` whose ``[tool.mutmut]`` is the project's plus that module's ``only_mutate`` and
test selection), runs mutmut there under a time limit, then reads mutmut's result files and prints
one table. Each module keeps its own cache, so a second run only tests what changed.

Mutants must be what is imported wherever tests run code: in the pytest process mutmut puts
``mutants/`` first on ``sys.path``; tests that run the ``streamlock`` script or ``python -c`` as a
subprocess inherit ``PYTHONPATH=<stage>/mutants`` (set here) and ``MUTANT_UNDER_TEST``, so the
mutant is active in the child too. Tests that run code only in a child never show up in mutmut's
per-function test map (it records calls in its own process), so they are not run for a mutant and
cost no time. Such a child started while mutmut collects its per-function map (``stats``) would
try to record its calls, read mutmut's settings from its own working directory (a temporary
repository) and die; ``CHILD_SITE`` makes it run the plain code instead.

mutmut keeps a verdict until the mutated function changes, so a survivor stays a survivor after a
test that kills it is added: ``--survivors`` runs the survivors (and the mutants no selected test
reached) again, by name.

Run: ``PYTHONPATH=. .venv/bin/python -m tests.trust.mutate [--module trailers] [--time 600]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / ".mutate"
REPORT_DIR = ROOT / ".mutate"


@dataclass(frozen=True, slots=True)
class Module:
    """One module under mutation: its source globs, its fast tests and a time limit (seconds)."""

    name: str
    sources: tuple[str, ...]
    tests: tuple[str, ...]
    seconds: int


UNIT = ("tests/unit",)
# The modules where a bug loses data or trust. ``sources`` are globs, so a module that becomes a
# package (``reconciler/registry/``) is one line to change; tests are the fastest that reach it.
MODULES: tuple[Module, ...] = (
    Module("trailers", ("reconciler/trailers.py",), UNIT, 600),
    Module("lockfile", ("reconciler/lockfile.py",), UNIT, 600),
    Module("planner", ("reconciler/planner.py",), UNIT, 1200),
    Module(
        "policy",
        ("reconciler/policy/*.py",),
        (
            "tests/unit/test_policy_tags.py",
            "tests/unit/test_policy_gates.py",
            "tests/unit/test_policy_annotations.py",
            "tests/unit/test_planner_policies.py",
        ),
        600,
    ),
    Module(
        "registry",
        ("reconciler/registry.py", "reconciler/registry/*.py"),
        (
            "tests/unit/test_registry_http.py",
            "tests/unit/test_registry_manifest.py",
            "tests/unit/test_registry_config.py",
            "tests/integration/test_registry_resolve.py",
            "tests/integration/test_registry_faults.py",
            "tests/integration/test_registry_auth.py",
            # The security paths: TLS off loopback, digest checks, rate and time limits, and
            # hostile answers (deep JSON, endless bodies, redirect and 401 loops).
            "tests/integration/test_registry_guards.py",
            "tests/integration/test_registry_budget.py",
            "tests/integration/test_registry_hostile.py",
        ),
        1200,
    ),
    Module(
        "gitrepo",
        ("reconciler/gitrepo.py",),
        (
            "tests/integration/test_gitrepo.py",
            "tests/integration/test_reconcile.py",
            # Healing a torn worktree, stale git locks, killing a push's process group.
            "tests/integration/test_recovery.py",
        ),
        1200,
    ),
    Module(
        "reconcile",
        ("reconciler/reconcile.py",),
        (
            "tests/integration/test_reconcile.py",
            "tests/integration/test_concurrency.py",
            "tests/integration/test_gitrepo.py",
            # Unpushed commits, push races and interrupted runs: the paths where work is lost.
            "tests/integration/test_recovery.py",
            # Reading locks: the lock cache, symlinked, unreadable and oversized locks.
            "tests/unit/test_lockfile.py",
        ),
        1200,
    ),
)
# What the staged copy needs besides reconciler/ and tests/ (mutmut copies those itself):
# tests read schemas/, example-repo/ and the hook definition relative to the checkout.
STAGED = ("reconciler", "tests", "schemas", "example-repo", ".pre-commit-hooks.yaml", "README.md")
# mutmut's exit codes, grouped as the table shows them (mutmut.stats.status_by_exit_code).
KILLED = {1, 3}
SURVIVED = {0}
TIMEOUT = {36, -24, 24, 152, 255}
NO_TESTS = {5, 33}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The counts of one module's run."""

    module: str
    mutants: int
    killed: int
    survived: int
    timeout: int
    no_tests: int
    not_run: int
    other: int
    seconds: float
    survivors: tuple[str, ...]
    error: str | None = None

    @property
    def kill_rate(self) -> float | None:
        """Killed (or timed out: an endless loop is caught too) of the mutants that ran."""
        ran = self.killed + self.survived + self.timeout + self.other
        return None if ran == 0 else 100.0 * (self.killed + self.timeout) / ran


def mutmut_section(root: Path = ROOT) -> dict[str, object]:
    """The project's ``[tool.mutmut]`` table."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(data.get("tool", {}).get("mutmut", {}))


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def staged_pyproject(module: Module, root: Path = ROOT) -> str:
    """The project's pyproject.toml with ``[tool.mutmut]`` narrowed to ``module``."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    section = mutmut_section(root)
    section["only_mutate"] = list(module.sources)
    # Test files renamed since MODULES was written are skipped rather than failing the run.
    section["pytest_add_cli_args_test_selection"] = [t for t in module.tests if (root / t).exists()]
    # Our own staging directory is not the project's git checkout: hash files, not git state.
    section["use_git_change_detection"] = False
    lines = ["[tool.mutmut]", *(f"{k} = {_toml_value(v)}" for k, v in section.items())]
    # Drop the project's table (a header up to the next header) and append the narrowed one.
    kept = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text).rstrip("\n")
    return kept + "\n\n" + "\n".join(lines) + "\n"


def stage(module: Module, root: Path = ROOT) -> Path:
    """``.mutate/<module>/``: symlinks to the checkout and the narrowed pyproject.toml."""
    where = STAGE / module.name
    where.mkdir(parents=True, exist_ok=True)
    for name in STAGED:
        link = where / name
        if link.is_symlink() or link.exists():
            continue
        if (root / name).exists():
            link.symlink_to(root / name)
    pyproject = where / "pyproject.toml"
    text = staged_pyproject(module, root)
    if not pyproject.exists() or pyproject.read_text(encoding="utf-8") != text:
        pyproject.write_text(text, encoding="utf-8")
    return where


def _mutmut() -> list[str]:
    script = Path(sys.executable).with_name("mutmut")
    if not script.exists():
        raise SystemExit(
            "mutmut is not installed: .venv/bin/pip install -e '.[dev]' (or pip install mutmut)"
        )
    return [str(script)]


# Imported at start-up by every Python process of a run (it is on their PYTHONPATH). mutmut's own
# processes run in the stage, where its settings are; a test's child elsewhere has none, and its
# calls are never read back anyway, so during ``stats`` it runs the plain code.
CHILD_SITE = """\
import os
from pathlib import Path

if os.environ.get("MUTANT_UNDER_TEST") == "stats" and "[tool.mutmut]" not in (
    Path("pyproject.toml").read_text(encoding="utf-8") if Path("pyproject.toml").is_file() else ""
):
    os.environ["MUTANT_UNDER_TEST"] = ""
"""


def run_module(
    module: Module, seconds: int, jobs: int, log: Path, names: Sequence[str] = ()
) -> float:
    """``mutmut run`` in the module's stage until done or ``seconds`` pass; returns the time.

    With ``names``, only those mutants run, also the ones that have a verdict already.
    """
    where = stage(module)
    # It must exist before Python starts: a PYTHONPATH entry missing at start-up is cached as
    # "no finder" and mutmut's later sys.path insert of the same directory then finds nothing.
    (where / "mutants").mkdir(exist_ok=True)
    site = where / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(CHILD_SITE, encoding="utf-8")
    env = {
        **os.environ,
        # Children (the streamlock script, python -c) import the mutants, not the checkout.
        "PYTHONPATH": os.pathsep.join((str(where / "mutants"), str(site))),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PY_IGNORE_IMPORTMISMATCH": "1",
    }
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*_mutmut(), "run", "--max-children", str(jobs), *names],
            cwd=where,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            _stop(proc)
        finally:
            if proc.poll() is None:
                _stop(proc)
    return time.monotonic() - started


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT to mutmut alone (it stops its workers and keeps every finished result), then
    SIGKILL to the whole group; interrupted mutants stay 'not run'."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)


def _meta_files(where: Path, module: Module) -> Iterator[Path]:
    base = where / "mutants"
    for pattern in module.sources:
        yield from sorted(base.glob(pattern + ".meta"))


def outcome(module: Module, seconds: float) -> Outcome:
    """Count mutmut's recorded verdicts for the module's files."""
    where = STAGE / module.name
    codes: dict[str, int | None] = {}
    for meta in _meta_files(where, module):
        codes.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    if not codes:
        return Outcome(module.name, 0, 0, 0, 0, 0, 0, 0, seconds, (), "no mutants recorded")
    values = list(codes.values())
    known = KILLED | SURVIVED | TIMEOUT | NO_TESTS

    def count(group: set[int]) -> int:
        return sum(1 for v in values if v in group)

    return Outcome(
        module=module.name,
        mutants=len(values),
        killed=count(KILLED),
        survived=count(SURVIVED),
        timeout=count(TIMEOUT),
        no_tests=count(NO_TESTS),
        not_run=sum(1 for v in values if v is None),
        other=sum(1 for v in values if v is not None and v not in known),
        seconds=seconds,
        survivors=tuple(sorted(k for k, v in codes.items() if v in SURVIVED)),
    )


def uncaught(module: Module) -> tuple[str, ...]:
    """The mutants no test caught so far: survivors, and those no selected test reached."""
    codes: dict[str, int | None] = {}
    for meta in _meta_files(STAGE / module.name, module):
        codes.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return tuple(sorted(k for k, v in codes.items() if v in SURVIVED | NO_TESTS))


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def survivor_diffs(module: Module, names: Sequence[str]) -> str:
    """Every surviving mutant of the module as a unified diff, with its name as a heading."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    where = STAGE / module.name
    chunks = []
    with _cwd(where):
        for name in names:
            path = _source_of(name, module)
            try:
                diff = get_diff_for_mutant(name, path=path)
            except Exception as exc:  # a diff we cannot render must not hide the others
                diff = f"(no diff: {type(exc).__name__}: {exc})"
            chunks.append(f"# {name}\n{diff}\n")
    return "\n".join(chunks)


def _source_of(name: str, module: Module) -> str:
    """``reconciler.trailers.x_parse__mutmut_3`` → ``reconciler/trailers.py``."""
    dotted = name.split(".x", 1)[0] if ".x" in name else name.rsplit(".", 1)[0]
    for candidate in (dotted.replace(".", "/") + ".py", dotted.replace(".", "/") + "/__init__.py"):
        if (STAGE / module.name / candidate).exists():
            return candidate
    return module.sources[0]


def table(outcomes: Sequence[Outcome]) -> str:
    head = (
        "module",
        "mutants",
        "killed",
        "survived",
        "timeout",
        "no tests",
        "not run",
        "other",
        "kill rate",
    )
    rows = [head]
    for o in outcomes:
        rate = "—" if o.kill_rate is None else f"{o.kill_rate:.1f}%"
        if o.error:
            rate = f"error: {o.error}"
        rows.append(
            (
                o.module,
                *(str(n) for n in (o.mutants, o.killed, o.survived, o.timeout, o.no_tests)),
                str(o.not_run),
                str(o.other),
                rate,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i in (0, 8) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--module", "-m", action="append", help="a module name (repeatable); default: all"
    )
    parser.add_argument(
        "--time", type=int, default=None, help="seconds per module (default: its own limit)"
    )
    parser.add_argument("--jobs", "-j", type=int, default=2, help="mutmut workers (default 2)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results first")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run again only the mutants no test caught (after adding tests that should)",
    )
    args = parser.parse_args(argv)
    by_name = {m.name: m for m in MODULES}
    names = args.module or [m.name for m in MODULES]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"unknown module {', '.join(unknown)}; choose from {', '.join(by_name)}")
    STAGE.mkdir(exist_ok=True)
    outcomes = []
    for name in names:
        module = by_name[name]
        if args.fresh:
            shutil.rmtree(STAGE / name, ignore_errors=True)
        missing = [t for t in module.tests if not (ROOT / t).exists()]
        if missing:
            print(f"  note: {name}: no such test path {', '.join(missing)} (skipped)", flush=True)
        limit = args.time or module.seconds
        log = STAGE / f"{name}.log"
        print(
            f"▶ {name}: mutmut over {', '.join(module.sources)} (≤ {limit}s; log {log})", flush=True
        )
        only = uncaught(module) if args.survivors else ()
        if args.survivors and not only:
            print(f"  {name}: no recorded survivors", flush=True)
            outcomes.append(outcome(module, 0.0))
            continue
        spent = run_module(module, limit, args.jobs, log, only)
        result = outcome(module, spent)
        outcomes.append(result)
        diffs = STAGE / f"{name}.survivors.diff"
        diffs.write_text(survivor_diffs(module, result.survivors), encoding="utf-8")
        print(
            f"  {result.killed} killed, {result.survived} survived, {result.not_run} not run "
            f"in {spent:.0f}s; survivors: {diffs}",
            flush=True,
        )
    print()
    print(table(outcomes))
    print(
        "\nkill rate = (killed + timeout) / mutants that ran; 'not run' = cut by the time limit;"
        " 'other' = suspicious, segfault or interrupted"
    )
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
