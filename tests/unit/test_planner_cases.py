"""Golden cases for the planner: tests/cases/planner/<case>/ holds the input streams and locks,
the registry's answers (case.yaml) and the exact expected lock bytes and tag statuses.

Set STREAMLOCK_UPDATE_GOLDEN=1 to rewrite the expected files after an intended change: every
case then fails with a note that it was rewritten (a run that only wrote files must never look
like a run that compared them). Review the diff like any other change and run again without it.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.config import Config
from reconciler.image import Image, ImportFailure, ImportRequest
from reconciler.imagestream import parse_streams
from reconciler.lockfile import loads
from reconciler.planner import plan

CASES = Path(__file__).resolve().parents[1] / "cases" / "planner"
UPDATE = os.environ.get("STREAMLOCK_UPDATE_GOLDEN") == "1"


def read_case(case: Path):
    spec = YAML(typ="safe").load((case / "case.yaml").read_text())
    files = {
        p.relative_to(case).as_posix(): p.read_bytes()
        for p in sorted((case / "streams").rglob("*.yaml"))
    }
    config = Config.from_mapping(spec.get("config"))
    streamset = parse_streams(files, config)
    assert not streamset.problems, [str(p) for p in streamset.problems]
    locks = {}
    for path in sorted((case / "locks").glob("*/*.lock.yaml")):
        lock = loads(path.read_bytes(), path.name)
        locks[lock.key] = lock
    observations = {}
    for item in spec.get("observations") or []:
        request = ImportRequest(
            item["reference"], item.get("importMode", "Legacy"), config.platform
        )
        if "failure" in item:
            observation = ImportFailure(item["failure"]["reason"], item["failure"]["message"])
        else:
            observation = Image(
                item["digest"],
                created=item.get("created"),
                platform=item.get("platform"),
                labels=item.get("labels") or {},
                platforms=item.get("platforms"),
                index_digest=item.get("indexDigest"),
            )
        observations[request.key] = observation
    bases = {(b["tag"], b["source"]): b["image"] for b in spec.get("bases") or []}
    now = datetime.fromisoformat(spec["now"])
    return streamset.streams, locks, bases, observations, config, now, spec.get("forced") or ()


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_planner_case(case: str):
    """The plan for this case writes exactly the expected locks and statuses."""
    root = CASES / case
    assert (root / "README").is_file(), "every case says in one line what it shows"
    streams, locks, bases, observations, config, now, forced = read_case(root)
    result = plan(streams, locks, bases, observations, config, now, forced=forced)
    statuses = "".join(
        f"{s.key} {s.action} {s.reason}\n" for s in sorted(result.statuses, key=lambda s: s.key)
    )
    expected = root / "expected"
    if UPDATE:
        write_expected(expected, result.files, statuses)
        # Never a passing comparison: the files were just written from this very result.
        pytest.fail(
            f"{case}: expected files rewritten (STREAMLOCK_UPDATE_GOLDEN=1); review the diff, "
            "then run again without the variable to compare",
            pytrace=False,
        )
    written = {
        p.relative_to(expected).as_posix(): p.read_bytes() for p in expected.rglob("*.lock.yaml")
    }
    assert {path: data or b"" for path, data in result.files.items()} == written
    assert statuses == (expected / "status.txt").read_text()


def write_expected(expected: Path, files: dict[str, bytes | None], statuses: str) -> None:
    """Replace a case's expected lock files and status list with what the planner gave."""
    expected.mkdir(exist_ok=True)
    for old in expected.rglob("*.lock.yaml"):
        old.unlink()
    for path, data in files.items():
        target = expected / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if data is not None else b"")
    (expected / "status.txt").write_text(statuses)
