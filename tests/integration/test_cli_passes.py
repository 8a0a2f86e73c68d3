"""The pass commands as a new user meets them: names, tables, summaries, options, exit codes."""

from __future__ import annotations

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
    assert "no such tag shop/web:mian" in err and "did you mean shop/web:main" in err
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
