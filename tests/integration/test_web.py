"""``streamlock report --html`` and the daemon's ``/ui/`` against real repositories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from tests.fixtures.daemon import DaemonProcess, wait_for
from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.images import Seeder

from .test_reconcile import docker_tag, follow_tag, stream_file


def streamlock(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def app_repo(config_repo, seeder: Seeder, repo_name: str) -> ConfigRepo:
    """shop/app with test (imported) and latest (an alias), reconciled once."""
    seeder.push_image(repo_name, "1.0", salt="web")
    tags = docker_tag("test", seeder.ref(repo_name, "1.0")) + follow_tag("latest", "test")
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    code, _, err = streamlock("reconcile", "--repo", str(repo.work))
    assert code == 0, err
    return repo


def test_report_writes_overview_stream_and_promotion_pages(app_repo, tmp_path):
    """The report holds the overview, one page per stream, the promotion pages and the
    stylesheet, and prints the overview's file URL."""
    out = tmp_path / "site"
    code, stdout, err = streamlock("report", "--repo", str(app_repo.work), "--html", str(out))
    assert code == 0, err
    assert stdout.strip() == (out / "index.html").resolve().as_uri()
    for page in ("index.html", "streams/shop/app.html", "promotion/shop.html", "static/style.css"):
        assert (out / page).is_file(), page
    assert "shop/app:test → shop/app:latest" in (out / "promotion/shop.html").read_text()


def test_report_refuses_a_folder_it_did_not_write(app_repo, tmp_path):
    """A non-empty folder without an earlier report is left alone, with an error."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, err = streamlock("report", "--repo", str(app_repo.work), "--html", str(out))
    assert code == 1 and "not empty" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_report_replaces_its_own_earlier_pages(app_repo, tmp_path):
    """Writing again over an earlier report drops the pages of streams that are gone."""
    out = tmp_path / "site"
    assert streamlock("report", "--repo", str(app_repo.work), "--html", str(out))[0] == 0
    stale = out / "streams" / "shop" / "gone.html"
    stale.write_text("old")
    assert streamlock("report", "--repo", str(app_repo.work), "--html", str(out))[0] == 0
    assert not stale.exists() and (out / "streams/shop/app.html").is_file()


@pytest.mark.parametrize(
    "option", ["--commit-url=javascript:alert(1)//{sha}", "--edit-url=file:///etc/{path}{line}"]
)
def test_report_refuses_a_link_template_that_is_not_http(app_repo, tmp_path, option):
    """A forge template other than http(s) is a usage error (exit 64); nothing is written."""
    out = tmp_path / "site"
    code, _, err = streamlock("report", "--repo", str(app_repo.work), "--html", str(out), option)
    assert code == 64 and "http" in err
    assert not out.exists()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def factory(repo: ConfigRepo, **kwargs) -> DaemonProcess:
        process = DaemonProcess(repo.remote, tmp_path / "wd", **kwargs)
        started.append(process)
        return process.start()

    yield factory
    for process in started:
        process.close()


def test_no_ui_turns_the_web_view_off(app_repo, daemon):
    """With --no-ui, /ui/ is not served; /status still is."""
    process = daemon(app_repo, args=["--no-ui"])
    assert process.get("/ui/").status_code == 404
    assert process.get("/status").status_code == 200


def test_ui_refreshes_when_a_pass_ends(app_repo, daemon, seeder, repo_name):
    """A stream pushed to the remote appears on /ui/ once the daemon's next pass ends."""
    process = daemon(app_repo, poll="1s")
    wait_for(lambda: process.passes() >= 1, 60)
    assert "streams/shop/app.html" in process.get("/ui/").text
    assert "shop/more" not in process.get("/ui/?namespace=shop").text
    tags = docker_tag("x", seeder.ref(repo_name, "1.0"))
    app_repo.commit({"streams/shop/more.yaml": stream_file("more", tags)}, "add more")
    wait_for(lambda: "streams/shop/more.html" in process.get("/ui/").text, 60, 0.2)
    assert process.get("/ui/streams/shop/more.html").status_code == 200


def test_report_reads_locks_through_the_passes_cache(app_repo, tmp_path):
    """After a pass, the report takes its locks from the cache that pass left, writing no
    lock cache of its own beside it."""
    from reconciler.reconcile import LockCache

    cache_dir = app_repo.work / ".git" / "streamlock"
    before = LockCache.of(app_repo.work / ".git")
    assert before.entries  # the pass in the fixture left its locks
    code, _, err = streamlock("report", "--repo", str(app_repo.work), "--html", str(tmp_path / "s"))
    assert code == 0, err
    assert not (cache_dir / "locks.json").exists()
    assert LockCache.of(app_repo.work / ".git").entries.keys() == before.entries.keys()
