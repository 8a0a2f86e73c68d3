"""The pass commands as a new user meets them: names, tables, summaries, options, exit codes."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.images import Seeder
from tests.integration.test_reconcile import (
    docker_tag,
    follow_tag,
    lock_of,
    stream_file,
    streamlock,
)


def two_streams(config_repo, seeder: Seeder, repo_name: str) -> ConfigRepo:
    """shop/app (stable, unscheduled; latest → stable) and shop/web (scheduled), reconciled,
    then a new build of each pushed."""
    seeder.push_image(repo_name, "1.0", salt="a-1")
    seeder.push_image(repo_name, "2.0", salt="w-1")
    app = docker_tag("stable", seeder.ref(repo_name, "1.0"), scheduled=False)
    app += follow_tag("latest", "stable")
    web = docker_tag("main", seeder.ref(repo_name, "2.0"))
    repo = config_repo(
        {
            "streams/shop/app.yaml": stream_file("app", app),
            "streams/shop/web.yaml": stream_file("web", web),
        }
    )
    assert streamlock("reconcile", "--repo", str(repo.work))[0] == 0
    seeder.push_image(repo_name, "1.0", salt="a-2")
    seeder.push_image(repo_name, "2.0", salt="w-2")
    return repo


def test_import_image_of_an_unknown_tag_is_a_usage_error_before_any_work(
    config_repo, seeder, repo_name
):
    """A name that names no tag exits 64 and commits nothing, although other bumps are due."""
    repo = two_streams(config_repo, seeder, repo_name)
    head = repo.remote_head()
    code, _, err = streamlock("import-image", "--repo", str(repo.work), "shop/web:mian")
    assert code == 64, err
    assert "shop/web:mian: no such tag" in err and "did you mean shop/web:main" in err
    assert repo.remote_head() == head and repo.head() == head


def test_import_image_changes_only_the_named_tag_and_its_followers(config_repo, seeder, repo_name):
    """import-image shop/app:stable bumps stable and latest, and leaves shop/web's due bump."""
    repo = two_streams(config_repo, seeder, repo_name)
    web_before = repo.read_remote("locks/shop/web.lock.yaml")
    code, out, err = streamlock("import-image", "--repo", str(repo.work), "shop/app:stable")
    assert code == 0, err
    lock = lock_of(repo)
    assert lock.tags["stable"].image == seeder.digest(repo_name, "1.0")
    assert lock.tags["latest"].image == lock.tags["stable"].image
    assert repo.read_remote("locks/shop/web.lock.yaml") == web_before
    assert "web" not in out


def test_import_image_takes_a_namespace_option(config_repo, seeder, repo_name):
    """-n shop app:stable names shop/app:stable, as oc import-image -n does."""
    repo = two_streams(config_repo, seeder, repo_name)
    code, _, err = streamlock("import-image", "--repo", str(repo.work), "-n", "shop", "app:stable")
    assert code == 0, err
    assert lock_of(repo).tags["stable"].image == seeder.digest(repo_name, "1.0")


def test_plan_lists_the_tags_of_a_deleted_stream_as_removed(config_repo, seeder, repo_name):
    """A deleted stream file: plan's table and summary show its tags removed, not 'nothing'."""
    repo = two_streams(config_repo, seeder, repo_name)
    repo.git("rm", "-q", "streams/shop/app.yaml")
    repo.git("commit", "-qm", "drop app")
    code, out, err = streamlock("plan", "--repo", str(repo.work))
    assert code == 2
    rows = [line.split() for line in out.splitlines()[1:]]
    assert ["shop", "app", "latest", "removed"] in [row[:4] for row in rows]
    assert ["shop", "app", "stable", "removed"] in [row[:4] for row in rows]
    assert "2 removed" in err and "nothing to change" not in err


def test_reconcile_shows_a_lock_it_rewrites_without_a_tag_change(config_repo, seeder, repo_name):
    """A stream file moved to another path: the lock rewrite is a 'repaired' row and counted."""
    repo = two_streams(config_repo, seeder, repo_name)
    repo.git("mv", "streams/shop/app.yaml", "streams/shop/app-stream.yaml")
    repo.git("commit", "-qm", "rename")
    code, out, err = streamlock("reconcile", "--repo", str(repo.work), "--no-push")
    assert code == 0, err
    assert "repaired" in out and "locks/shop/app.lock.yaml" in out
    assert "1 lock repaired" in err and "nothing to change" not in err
    assert "2 commits made, not pushed" in err and "committed" not in err


def test_summary_counts_tags_and_problems_apart(config_repo, seeder, repo_name):
    """Good tags and broken files are counted apart: '2 tags: …; 2 problems in 2 files'."""
    repo = two_streams(config_repo, seeder, repo_name)
    bad = stream_file("bad", "  - name: x\n    from:\n      kind: Nonsense\n      name: y\n")
    (repo.work / "streams/shop/bad.yaml").write_text(bad)
    (repo.work / "streams/shop/worse.yaml").write_text(bad.replace("bad", "worse"))
    code, _, err = streamlock("plan", "--repo", str(repo.work))
    assert code == 1
    summary = err.splitlines()[-1]
    assert summary.startswith("✗ 3 tags: ") and "2 problems in 2 files" in summary
    assert "invalid" not in summary


def test_a_held_tag_reads_held_once(config_repo, seeder, repo_name):
    """plan -A shows 'Held: <reason>', not 'Held: held: <reason>'."""
    repo = two_streams(config_repo, seeder, repo_name)
    path = repo.work / "streams/shop/web.yaml"
    hold = "    annotations:\n      streamlock.dev/hold: freeze\n"
    path.write_text(path.read_text().replace("- name: 'main'\n", f"- name: 'main'\n{hold}", 1))
    _, out, _ = streamlock("plan", "--repo", str(repo.work), "-A")
    assert "Held: freeze" in out and "held: freeze" not in out, out


def test_json_output_lists_tags_as_the_table_does_and_problems_as_objects(
    config_repo, seeder, repo_name
):
    """-o json: tags in the table's order; problems with path, line, column and message."""
    repo = two_streams(config_repo, seeder, repo_name)
    (repo.work / "streams/shop/bad.yaml").write_text(
        stream_file("bad", "  - name: x\n    from:\n      kind: Nonsense\n      name: y\n")
    )
    _, out, _ = streamlock("plan", "--repo", str(repo.work), "-o", "json")
    data = json.loads(out)
    keys = [(t["namespace"], t["stream"], t["tag"]) for t in data["tags"]]
    assert keys == sorted(keys)
    [problem] = data["problems"]
    assert problem["path"] == "streams/shop/bad.yaml" and problem["line"] == 10
    assert set(problem) == {"path", "line", "column", "message"}


def test_plan_in_a_directory_that_is_no_config_repository_is_an_error(tmp_path, monkeypatch):
    """No streamlock.yaml and no streams/: exit 1 with a hint, never '✓ no image streams'."""
    monkeypatch.chdir(tmp_path)
    code, _, err = streamlock("plan")
    assert code == 1
    assert "has no streamlock.yaml and no streams/ directory" in err and "streamlock init" in err


def test_repo_pointing_into_the_repository_names_the_right_directory(config_repo):
    """--repo at a sub-folder of a config repository fails and names the repository."""
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", "")})
    (repo.work / "deploy").mkdir()
    code, _, err = streamlock("plan", "--repo", str(repo.work / "deploy"))
    assert code == 1
    assert f"pass --repo {repo.work.resolve()}" in err


def test_global_options_work_before_the_subcommand(config_repo):
    """streamlock --repo DIR --log-level info validate reads DIR, as docs/cli.md says."""
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", "")})
    code, _, err = streamlock("--repo", str(repo.work), "--log-level", "info", "validate")
    assert code == 0, err
    assert "✓ valid" in err


def test_global_options_work_after_the_subcommand(config_repo):
    """validate --debug --log-format json --repo DIR is accepted as well."""
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", "")})
    args = ["validate", "--debug", "--log-format", "json", "--repo", str(repo.work)]
    code, _, err = streamlock(*args)
    assert code == 0, err


def test_global_repo_before_a_nested_subcommand(config_repo):
    """streamlock --repo DIR set image-lookup app reaches the nested command."""
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", "")})
    code, _, err = streamlock("--repo", str(repo.work), "set", "image-lookup", "shop/app")
    assert code == 0, err
    assert "lookupPolicy" in (repo.work / "streams/shop/app.yaml").read_text()


@pytest.mark.parametrize(
    "args",
    [
        ("describe", "shop/App"),
        ("history", "shop/app:bad tag"),
        ("resolve", "shop/app@sha256:xyz"),
        ("rollback", "Shop/app:test"),
        ("tag", "-d", "shop/app:-x"),
        ("import-image", "shop/app:bad tag"),
        ("set", "image-lookup", "shop/App"),
    ],
)
def test_a_malformed_name_is_a_usage_error_in_every_command(config_repo, args):
    """A name that cannot be one exits 64 (not 1) in every command that takes names."""
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", "")})
    code, _, err = streamlock(*args, "--repo", str(repo.work))
    assert code == 64, err


def test_log_format_json_keeps_stderr_all_json(config_repo, seeder, repo_name):
    """--log-format json: problems, the summary and errors on stderr are JSON lines too."""
    repo = two_streams(config_repo, seeder, repo_name)
    (repo.work / "streams/shop/bad.yaml").write_text("metadata:\n  name: a\n   x: 1\n")
    for args in (["plan"], ["describe", "shop/nope"], ["describe"]):
        _, _, err = streamlock("--log-format", "json", *args, "--repo", str(repo.work))
        lines = err.splitlines()
        assert lines, args
        for line in lines:
            assert isinstance(json.loads(line), dict), line


def test_plan_all_names_the_image_a_hold_keeps_out(config_repo, seeder, repo_name):
    """plan -A: a held tag's row says what its source serves now, the image kept out."""
    repo = two_streams(config_repo, seeder, repo_name)
    path = repo.work / "streams/shop/web.yaml"
    hold = "    annotations:\n      streamlock.dev/hold: freeze\n"
    path.write_text(path.read_text().replace("- name: 'main'\n", f"- name: 'main'\n{hold}", 1))
    _, out, _ = streamlock("plan", "--repo", str(repo.work), "-A")
    served = seeder.digest(repo_name, "2.0").split(":", 1)[1][:12]
    row = next(line for line in out.splitlines() if " main " in line)
    assert f"Held: freeze; the source serves {served} now, kept out" in row
