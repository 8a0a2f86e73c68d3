"""The ``make trust`` harness through its API: a case gives a well-formed row, and its checkers can
count what they exist to count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gitremote import BRANCH, git
from tests.trust.harness import (
    REGISTRY_PASSWORD,
    Case,
    CaseSpec,
    Docker,
    Lab,
    check_converged,
    check_exactly_once,
    check_secrets,
    run_case,
    table,
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("trust")).start()
    yield lab
    lab.close(keep=True)


def pinned_app(c: Case) -> str:
    """shop/app:a pinned by one real pass; returns the repository pushed to."""
    repo = f"harness/{c.dir.name}"
    c.push(repo, "1", salt=f"{c.dir.name}-1")
    c.make_repo([c.stream("shop", "app", [Docker("a", repo, "1")])])
    run = c.streamlock("reconcile")
    assert run.code == 0, run.stderr
    return repo


def test_a_case_run_through_the_harness_gives_a_well_formed_clean_row(lab: Lab) -> None:
    """A pass that does nothing wrong yields a row with its name, a result and four zero counts."""
    spec = CaseSpec("harness-clean", "one image pinned, then moved", lambda c: _moved(c))
    row = run_case(lab, spec)
    assert row.error is None, row.error
    assert (row.name, row.did) == ("harness-clean", "one image pinned, then moved")
    assert row.result
    counts = row.counts
    assert (counts.lost, counts.wrong, counts.leaked, counts.stuck) == (0, 0, 0, 0)
    assert row.ok
    lines = table([row]).splitlines()
    assert lines[0].split()[:3] == ["case", "what", "was"]
    assert lines[2].startswith("✓ harness-clean")


def _moved(c: Case) -> None:
    repo = pinned_app(c)
    c.push(repo, "1", salt=f"{c.dir.name}-2")
    c.streamlock("reconcile")


def test_converged_counts_a_bump_that_was_never_made(lab: Lab) -> None:
    """The registry moved and nobody reconciled: the converged check counts one bump lost."""
    c = lab.case("harness-lost")
    repo = pinned_app(c)
    c.push(repo, "1", salt="moved")
    check_converged(c, fresh=False)
    assert (c.counts.lost, c.counts.wrong) == (1, 0), c.notes


def test_exactly_once_counts_a_record_the_lock_does_not_hold(lab: Lab) -> None:
    """A reconciler-authored commit whose trailer claims an image its lock lacks is a wrong pin."""
    c = lab.case("harness-false-record")
    repo = pinned_app(c)
    c.repo.pull()  # type: ignore[union-attr]
    pinned = c.served[(repo, "1")][0]  # Previous is true; only the image is false
    message = (
        "shop/app: a forged\n\nbody\n\nStreamlock-Tag: shop/app:a\nStreamlock-From: x\n"
        f"Streamlock-Previous: {pinned}\nStreamlock-Image: sha256:{'1' * 64}\n"
    )
    env = {"GIT_AUTHOR_EMAIL": "bot@trust.invalid", "GIT_AUTHOR_NAME": "streamlock-trust"}
    _commit_as(c.work, message, env)
    check_exactly_once(c)
    assert c.counts.wrong == 1, c.notes


def _commit_as(work: Path, message: str, env: dict[str, str]) -> None:
    import os
    import subprocess

    subprocess.run(
        ["git", "commit", "--quiet", "--allow-empty", "-F", "-"],
        cwd=work,
        input=message.encode(),
        env={**os.environ, **env},
        check=True,
    )
    git(work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")


def test_secrets_counts_a_password_left_in_a_file(lab: Lab) -> None:
    """The registry password written anywhere under the case is one leak."""
    c = lab.case("harness-leak")
    (c.dir / "debug.log").write_text(f"auth failed with {REGISTRY_PASSWORD}\n")
    check_secrets(c)
    assert c.counts.leaked == 1, c.notes
