"""The command examples of README.md and docs/cli.md are transcripts, run against a real registry.

Every ```console block carries a marker comment on the line above it:

- ``<!-- transcript: example -->``: a fresh copy of example-repo/, its images in a registry of
  this module's own, reconciled once; the block's commands run in it in order;
- ``<!-- transcript: continue -->``: the same repository as the block before, as it was left;
- ``<!-- transcript: example, with streams/shop/broken.yaml -->``: as ``example``, with that file
  copied from tests/cases/docs/ first (``continue, with …`` works too);
- ``<!-- transcript: example, new build -->``: as ``example``, and then the registry serves a new
  build of shop/app:1.1 (make demo's), until the document's last block;
- ``<!-- transcript: empty -->``: a new, empty Git repository (for ``init`` and ``adopt``);
- ``<!-- transcript: not run: REASON -->``: commands that need what a test does not have (a
  daemon left running, podman, a cluster); the reason is shown to reviewers.

Each ``$ `` line is a command (``streamlock …`` in-process, ``git …`` as a process); the lines up
to the next ``$ `` are its expected output, stdout and stderr as a terminal shows them.
Compared after masking what changes from run to run: the registry's address (written
``localhost:5000``), digests and other hex strings, timestamps, ages, temporary paths and column
padding. A line ``…`` stands for any number of lines.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from tests.fixtures.demo import (
    BUMP_IMAGE,
    EXAMPLE_HOST,
    EXAMPLE_IMAGES,
    prepare_example_repo,
    seed_example,
)
from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.registry_server import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/cli.md")
CASES = ROOT / "tests" / "cases" / "docs"
MARKER = re.compile(r"<!--\s*transcript:\s*(.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One ```console block: where it is, its marker, and its commands with their output."""

    doc: str
    line: int
    marker: str
    steps: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: str) -> Iterator[Block]:
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```console":
            index += 1
            continue
        start = index
        marker = ""
        for back in range(start - 1, max(start - 4, -1), -1):
            found = MARKER.search(lines[back])
            if found:
                marker = found.group(1)
                break
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        steps: list[tuple[str, list[str]]] = []
        for line in body:
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        yield Block(doc, start + 1, marker, tuple((c, tuple(o)) for c, o in steps))
        index += 1


ALL = [block for doc in DOCS for block in blocks(doc)]


def mask(text: str, host: str, work: Path) -> list[str]:
    """What may differ from run to run, made equal; column padding collapsed."""
    text = text.replace(host, EXAMPLE_HOST).replace(str(work), "<repo>")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>", text)
    text = re.sub(
        r"(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes|hours|days|"
        r"weeks|months|years)) (ago|from now)",
        "<age>",
        text,
        flags=re.IGNORECASE,
    )
    # git's blob ids in a diff may be all digits, which the general rule leaves alone.
    text = re.sub(r"^index [0-9a-f]{7,}\.\.[0-9a-f]{7,}", "index <hex>..<hex>", text, flags=re.M)
    text = re.sub(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,64}\b", "<hex>", text)
    text = re.sub(r"<hex>…", "<hex>", text)
    text = re.sub(r"/tmp/\S+", "<tmp>", text)
    return [" ".join(line.split()) for line in text.splitlines()]


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` line by line, where a line ``…`` stands for any number of lines."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "…":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == head and matches(rest, actual[1:])


@pytest.fixture(scope="module")
def example_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry of this module's own holding the example's images."""
    from tests.fixtures.images import Seeder

    with RegistryServer(tmp_path_factory.mktemp("docs-registry")) as server:
        seeder = Seeder.for_server(server)
        try:
            seed_example(seeder)
        finally:
            seeder.close()
        yield server


class Session:
    """The repository the transcripts of one document run in, block after block."""

    def __init__(self, registry: RegistryServer, tmp: Path) -> None:
        self.registry = registry
        self.tmp = tmp
        self.count = 0
        self.work: Path | None = None

    def push(self, new_build: bool) -> None:
        """shop/app:1.1 as make demo's new build, or back to the example's (same digests)."""
        from tests.fixtures.images import Seeder

        image = BUMP_IMAGE
        if not new_build:
            image = next(i for i in EXAMPLE_IMAGES if (i.repo, i.tag) == ("shop/app", "1.1"))
        seeder = Seeder.for_server(self.registry)
        try:
            image.push(seeder)
        finally:
            seeder.close()

    def fresh(self) -> Path:
        self.count += 1
        repo: ConfigRepo = prepare_example_repo(
            self.tmp / f"example-{self.count}", self.registry.host
        )
        code, out = self.streamlock(repo.work, ["reconcile"])
        assert code == 0, out
        self.work = repo.work
        return repo.work

    def empty(self) -> Path:
        self.count += 1
        work = self.tmp / f"empty-{self.count}"
        work.mkdir()
        subprocess.run(["git", "init", "-q", str(work)], check=True, timeout=60)
        self.work = work
        return work

    def streamlock(self, work: Path, args: list[str]) -> tuple[int, str]:
        cwd = os.getcwd()
        os.chdir(work)
        try:
            result = CliRunner().invoke(cli, args, catch_exceptions=False, prog_name="streamlock")
        finally:
            os.chdir(cwd)
        return result.exit_code, result.output

    def run(self, work: Path, command: str) -> str:
        args = shlex.split(command)
        if args[0] == "streamlock":
            return self.streamlock(work, args[1:])[1]
        if args[0] == "git":
            done = subprocess.run(
                args, cwd=work, capture_output=True, text=True, timeout=60, check=False
            )
            return done.stdout + done.stderr
        raise AssertionError(f"{command!r}: only streamlock and git commands run in transcripts")


@pytest.fixture(scope="module")
def sessions(example_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory):
    made: dict[str, Session] = {}

    def get(doc: str) -> Session:
        if doc not in made:
            made[doc] = Session(example_registry, tmp_path_factory.mktemp("docs"))
        return made[doc]

    yield get
    if made:
        next(iter(made.values())).push(new_build=False)


def test_every_console_block_is_marked():
    """A new example without a transcript marker fails: examples cannot drift unnoticed."""
    unmarked = [block.id for block in ALL if not block.marker]
    assert unmarked == []
    assert len(ALL) >= 10


RUN = [block for block in ALL if not block.marker.startswith("not run")]


def test_blocks_not_run_say_why_and_run_no_one_shot_command():
    """A block marked 'not run' gives its reason, and is only the daemon or a container."""
    for block in ALL:
        if block.marker.startswith("not run"):
            assert block.marker.removeprefix("not run").strip(": "), block.id
            assert all(
                c.split()[:2] == ["streamlock", "run"] or not c.startswith("streamlock ")
                for c, _ in block.steps
            ), f"{block.id}: a one-shot streamlock command must run as a transcript"


@pytest.mark.parametrize("block", RUN, ids=[block.id for block in RUN])
def test_transcript(block: Block, sessions) -> None:
    """The block's commands print what the block shows (masked)."""
    assert block.marker, f"{block.id}: no transcript marker above the block"
    assert not any(c.split()[:2] == ["streamlock", "run"] for c, _ in block.steps), (
        f"{block.id}: the daemon runs until stopped; mark the block 'not run'"
    )
    session = sessions(block.doc)
    kind, _, extra = block.marker.partition(",")
    if kind.strip() == "empty":
        work = session.empty()
    elif kind.strip() == "example" or session.work is None:
        session.push(new_build=False)
        work = session.fresh()
        if "new build" in extra:
            session.push(new_build=True)
    else:
        assert kind.strip() == "continue", block.marker
        work = session.work
    for name in re.findall(r"with (\S+)", extra):
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (CASES / Path(name).name).read_text(encoding="utf-8")
        target.write_text(text.replace(EXAMPLE_HOST, session.registry.host), encoding="utf-8")
    for command, expected in block.steps:
        output = session.run(work, command.replace(EXAMPLE_HOST, session.registry.host))
        want = mask("\n".join(expected), session.registry.host, work)
        got = mask(output, session.registry.host, work)
        assert matches(want, got), (
            f"{block.id}: $ {command}\n--- documented\n"
            + "\n".join(expected)
            + "\n--- actual\n"
            + output
        )
