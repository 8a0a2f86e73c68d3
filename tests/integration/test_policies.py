"""Tag policies in whole passes: the real registry with many tags, a bare Git remote."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from reconciler import status
from reconciler.cli import registry_factory
from reconciler.reconcile import PassOptions, PassResult, run_pass
from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.images import Seeder
from tests.integration.test_reconcile import lock_of, stream_file

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
SEMVER_TAGS = [
    *(f"1.{minor}.{patch}" for minor in range(12) for patch in range(8)),
    *(f"v2.{minor}.0" for minor in range(5)),
    *(f"2.5.0-rc.{n}" for n in range(4)),
    *(f"3.0.0-beta.{n}" for n in range(3)),
    *(f"main-{1_700_000_000 + n * 977}-{n:07x}" for n in range(60)),
    "latest",
    "main",
]


def policy_tag(
    tag: str, repository: str, annotations: dict[str, str], kind: str = "DockerImage"
) -> str:
    lines = [f"  - name: {tag!r}", "    annotations:"]
    lines += [f"      {key}: {value!r}" for key, value in annotations.items()]
    lines += ["    from:", f"      kind: {kind}", f"      name: {repository}"]
    lines += ["    importPolicy:", "      scheduled: true"]
    return "\n".join(lines) + "\n"


def reconcile(repo: ConfigRepo, now: datetime = T0) -> PassResult:
    """One writing pass at ``now`` (the fake clock), through the same shell as the CLI."""
    return asyncio.run(run_pass(repo.work, registry_factory, PassOptions(now=now)))


def status_of(result: PassResult, tag: str) -> status.TagStatus:
    return next(s for s in result.plan.statuses if s.tag == tag)


@pytest.fixture
def many(seeder: Seeder, repo_name: str) -> dict[str, str]:
    """A repository with semver tags, pre-releases, timestamps and floating names."""
    return seeder.push_tags_bulk(repo_name, SEMVER_TAGS)


def test_semver_pins_the_highest_version_in_range(config_repo, seeder, repo_name, many):
    """semver:>=1.2.0 <2 pins 1.11.7 among the listing; the lock records the tag."""
    tags = policy_tag(
        "stable", seeder.ref(repo_name), {"streamlock.dev/policy": "semver:>=1.2.0 <2"}
    )
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    result = reconcile(repo)
    assert result.ok, result.plan.statuses
    entry = lock_of(repo).tags["stable"]
    assert entry.tag == "1.11.7"
    assert entry.image == many["1.11.7"]
    assert entry.docker_image_reference == seeder.ref(repo_name, digest=many["1.11.7"])


def test_semver_v_prefix_and_prereleases(config_repo, seeder, repo_name, many):
    """v2.4.0 counts as 2.4.0; the rc tags count only for a range that names a pre-release."""
    tags = policy_tag("two", seeder.ref(repo_name), {"streamlock.dev/policy": "semver:>=2 <3"})
    tags += policy_tag(
        "rc", seeder.ref(repo_name), {"streamlock.dev/policy": "semver:>=2.5.0-rc.0 <3"}
    )
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    reconcile(repo)
    lock = lock_of(repo)
    assert lock.tags["two"].tag == "v2.4.0"
    assert lock.tags["rc"].tag == "2.5.0-rc.3"


def test_numerical_over_an_extracted_group(config_repo, seeder, repo_name, many):
    """numerical:asc over the ts group of the filter picks the newest main build."""
    annotations = {
        "streamlock.dev/policy": "numerical:asc",
        "streamlock.dev/tag-filter": "^main-(?P<ts>[0-9]+)-[a-f0-9]+$",
    }
    tags = policy_tag("edge", seeder.ref(repo_name), annotations)
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    reconcile(repo)
    assert lock_of(repo).tags["edge"].tag == f"main-{1_700_000_000 + 59 * 977}-{59:07x}"


def test_alphabetical_with_an_exclusion(config_repo, seeder, repo_name, many):
    """alphabetical:asc over the main- builds, the newest excluded, picks the one before."""
    annotations = {
        "streamlock.dev/policy": "alphabetical:asc",
        "streamlock.dev/tag-filter": "^main-[0-9]+-",
        "streamlock.dev/tag-exclude": f"-{59:07x}$",
    }
    tags = policy_tag("edge", seeder.ref(repo_name), annotations)
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    reconcile(repo)
    assert lock_of(repo).tags["edge"].tag == f"main-{1_700_000_000 + 58 * 977}-{58:07x}"


def test_bump_commit_says_why(config_repo, seeder, repo_name, many):
    """A policy bump's commit names the policy, the candidates and the previous tag."""
    tags = policy_tag("stable", seeder.ref(repo_name), {"streamlock.dev/policy": "semver:>=1 <2"})
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    reconcile(repo)
    seeder.push_tags_bulk(repo_name, ["1.12.0"])
    reconcile(repo, T0 + timedelta(hours=1))
    message = repo.log("locks/shop/app.lock.yaml", n=1)[0]["message"]
    assert "tag 1.12.0" in message
    assert "chose 1.12.0 by semver:>=1 <2 among 97 of" in message
    assert "previous 1.11.7" in message


def test_no_matching_tag_keeps_the_pin_and_names_the_nearest(config_repo, seeder, repo_name, many):
    """A range that matches nothing keeps the pin and reports the nearest candidates."""
    tags = policy_tag("stable", seeder.ref(repo_name), {"streamlock.dev/policy": "semver:>=1 <2"})
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    reconcile(repo)
    before = lock_of(repo).tags["stable"]
    tags = policy_tag("stable", seeder.ref(repo_name), {"streamlock.dev/policy": "semver:>=4"})
    repo.commit({"streams/shop/app.yaml": stream_file("app", tags)}, "ask for 4")
    result = reconcile(repo, T0 + timedelta(hours=1))
    found = status_of(result, "stable")
    assert found.reason == status.NO_MATCHING_TAG
    assert "nearest: 3.0.0-beta.2, 3.0.0-beta.1, 3.0.0-beta.0" in found.message
    assert lock_of(repo).tags["stable"].image == before.image


def test_newest_build_picks_the_latest_created(config_repo, seeder, repo_name):
    """newest-build compares created among the bounded candidates, not the tag names."""
    for name, created in [
        ("build-a", "2026-11-03T00:00:00Z"),
        ("build-b", "2026-11-01T00:00:00Z"),
        ("build-c", "2026-11-02T00:00:00Z"),
        ("build-d", "2026-10-01T00:00:00Z"),
    ]:
        seeder.push_image(repo_name, name, salt=name, created=created)
    annotations = {
        "streamlock.dev/policy": "newest-build",
        "streamlock.dev/tag-filter": "^build-",
        "streamlock.dev/candidates": "3",
    }
    tags = policy_tag("edge", seeder.ref(repo_name), annotations)
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    reconcile(repo)
    # The three highest names are d, c, b: a (the newest build) is not among the candidates.
    assert lock_of(repo).tags["edge"].tag == "build-c"


def test_require_platforms_refuses_a_candidate_without_them(config_repo, seeder, repo_name):
    """The highest version lacks linux/arm64, so the next one that has it is pinned."""
    both = [("linux", "amd64", None), ("linux", "arm64", "v8")]
    seeder.push_index(repo_name, "1.1.0", both, salt="old")
    seeder.push_index(repo_name, "1.2.0", [("linux", "amd64", None)], salt="new")
    annotations = {
        "streamlock.dev/policy": "semver:>=1",
        "streamlock.dev/require-platforms": "linux/amd64,linux/arm64",
    }
    tags = policy_tag("multi", seeder.ref(repo_name), annotations)
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    result = reconcile(repo)
    assert result.ok, result.plan.statuses
    assert lock_of(repo).tags["multi"].tag == "1.1.0"
    assert "1 refused for platforms" in repo.log(n=1)[0]["message"]
    assert result.ok


def test_require_platforms_on_a_plain_tag_keeps_the_pin(config_repo, seeder, repo_name):
    """A plain tag whose image lacks a required platform is not pinned."""
    seeder.push_index(repo_name, "1.0", [("linux", "amd64", None)], salt="x")
    tags = (
        f"  - name: app\n    annotations:\n      streamlock.dev/require-platforms: linux/arm64\n"
        f"    from:\n      kind: DockerImage\n      name: {seeder.ref(repo_name, '1.0')}\n"
    )
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    result = reconcile(repo)
    assert status_of(result, "app").reason == status.PLATFORM_MISSING
    assert repo.read_remote("locks/shop/app.lock.yaml") is None


def test_a_failed_listing_keeps_the_pin(config_repo, seeder, repo_name, many):
    """A repository that cannot be listed fails the tag; its pin stays."""
    tags = policy_tag("stable", seeder.ref(repo_name), {"streamlock.dev/policy": "semver:>=1 <2"})
    gone = policy_tag(
        "gone", seeder.ref(repo_name + "-missing"), {"streamlock.dev/policy": "semver:>=1"}
    )
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags + gone)})
    result = reconcile(repo)
    assert status_of(result, "gone").action == status.FAILED
    assert lock_of(repo).tags["stable"].tag == "1.11.7"
    assert "gone" not in lock_of(repo).tags


class _Counting:
    """The CLI's resolver, counting the repositories it is asked to list."""

    def __init__(self) -> None:
        self.listed: list[str] = []

    def factory(self, config, root):
        self.inner = registry_factory(config, root)
        return self

    async def resolve_all(self, requests):
        return await self.inner.resolve_all(requests)

    async def list_all(self, references):
        self.listed += list(references)
        return await self.inner.list_all(references)


def test_each_repository_is_listed_once_per_pass(config_repo, seeder, repo_name, many):
    """Three policy tags choosing in one repository cost one listing."""
    tags = "".join(
        policy_tag(name, seeder.ref(repo_name), {"streamlock.dev/policy": policy})
        for name, policy in [("a", "semver:>=1 <2"), ("b", "semver:>=2 <3"), ("c", "semver:1.3.x")]
    )
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    counting = _Counting()
    result = asyncio.run(run_pass(repo.work, counting.factory, PassOptions(now=T0)))
    assert result.ok
    assert counting.listed == [seeder.ref(repo_name)]
    assert {t: e.tag for t, e in lock_of(repo).tags.items()} == {
        "a": "1.11.7",
        "b": "v2.4.0",
        "c": "1.3.7",
    }


@pytest.mark.parametrize("variant", ["registry_htpasswd", "registry_token"])
def test_listing_uses_the_operators_credentials(
    variant, request, make_seeder, config_repo, repo_name, tmp_path
):
    """A policy tag on an authenticated registry lists and pins with ``--auth-config``."""
    from click.testing import CliRunner

    from reconciler.cli import cli

    server = request.getfixturevalue(variant)
    seeder = make_seeder(server)
    seeder.push_tags_bulk(repo_name, ["1.0.0", "1.2.0", "2.0.0"])
    tags = policy_tag("stable", seeder.ref(repo_name), {"streamlock.dev/policy": "semver:<2"})
    repo = config_repo({"streams/shop/app.yaml": stream_file("app", tags)})
    operator = tmp_path / "operator.yaml"
    auth = "{env: {username: SL_TEST_USER, password: SL_TEST_PASSWORD}}"
    operator.write_text(f"registries:\n- host: '{server.host}'\n  auth: {auth}\n")
    username, password = server.auth
    env = {"SL_TEST_USER": username, "SL_TEST_PASSWORD": password}
    args = ["--auth-config", str(operator), "reconcile", "--repo", str(repo.work)]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert lock_of(repo).tags["stable"].tag == "1.2.0"


def test_a_daemon_shard_lists_and_resolves_only_its_policy_tags(seeder, repo_name, tmp_path, many):
    """A replica lists the repositories of its shard and looks up their ``repository:tag``s."""
    from reconciler.config import Config
    from reconciler.daemon.metrics import Metrics
    from reconciler.daemon.service import _ShardResolver
    from reconciler.image import Image, ImportFailure, ImportRequest

    mine, theirs = seeder.ref(repo_name), seeder.ref(repo_name + "-other")
    resolver = _ShardResolver(Config(), tmp_path, Metrics(), allowed={mine})
    listings = asyncio.run(resolver.list_all([mine, theirs]))
    assert "1.11.7" in listings[mine]
    assert isinstance(listings[theirs], ImportFailure) and listings[theirs].reason == "NotInShard"
    request = ImportRequest(f"{mine}:1.11.7")
    found = asyncio.run(resolver.resolve_all([request]))
    assert isinstance(found[request.key], Image) and found[request.key].digest == many["1.11.7"]
