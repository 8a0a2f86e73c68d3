"""Finding consumer files: the configured globs, links out of the repository, the scan cache."""

from __future__ import annotations

import json
from pathlib import Path

from structlog.testing import capture_logs

from reconciler.config import Config
from reconciler.consumers.reader import ScanCache, blob_id, find, load


def test_configured_glob_matching_nothing_is_a_warning(tmp_path: Path):
    """A consumers glob that matches no file logs a warning and is not an error."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "app.yaml").write_text("kind: Pod\n")
    with capture_logs() as logs:
        paths, problems = find(tmp_path, ["deploy/*.yaml", "charts/**/values.yaml"])
    assert paths == ["deploy/app.yaml"] and problems == []
    assert [(e["log_level"], e.get("glob")) for e in logs] == [("warning", "charts/**/values.yaml")]


def test_link_out_of_the_repository_is_refused(tmp_path: Path):
    """A consumer path that is a symlink leading outside the repository is a problem, unread."""
    outside = tmp_path / "outside.yaml"
    outside.write_text("kind: Pod\n")
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    (repo / "deploy" / "x.yaml").symlink_to(outside)
    paths, problems = find(repo, ["deploy/*.yaml"])
    assert paths == [] and [str(p) for p in problems] == [
        "deploy/x.yaml:1:1: symlink points outside the repository"
    ]


def test_scan_cache_parses_each_blob_once(tmp_path: Path):
    """A second load with the saved cache parses nothing; a changed file is parsed again."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "a.yaml").write_text("kind: Pod\n")
    (tmp_path / "deploy" / "b.yaml").write_text("kind: Pod\n")
    cache_file = tmp_path / "cache.json"
    first = ScanCache(cache_file, "default")
    load(tmp_path, Config(), first)
    first.save()
    (tmp_path / "deploy" / "b.yaml").write_text("kind: Service\n")
    second = ScanCache(cache_file, "default")
    load(tmp_path, Config(), second)
    assert (first.parsed, second.parsed) == (2, 1)


def test_blob_id_is_gits():
    """blob_id agrees with git hash-object (the empty blob's well-known id)."""
    assert blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_scan_cache_of_other_code_is_dropped(tmp_path: Path):
    """A cache written by another version of the consumer modules is not trusted."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "a.yaml").write_text("kind: Pod\n")
    cache_file = tmp_path / "cache.json"
    first = ScanCache(cache_file, "default")
    load(tmp_path, Config(), first)
    first.save()
    data = json.loads(cache_file.read_text())
    cache_file.write_text(json.dumps({**data, "code": "another version"}))
    second = ScanCache(cache_file, "default")
    load(tmp_path, Config(), second)
    assert second.parsed == 1
