"""``check-access`` and ``codeowners`` on real Git repositories with pull-request-like branches.

The main branch holds two namespaces with owners and locks the reconciler committed (real passes
with a registry stand-in); each test makes a branch ``pr`` as someone would for a pull request and
runs the real CLI in-process on it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.access import codeowners
from reconciler.cli import cli
from reconciler.image import Image, ImportRequest, Observation
from reconciler.reconcile import PassOptions, run_pass
from tests.fixtures.gitremote import ConfigRepo, git

BOT = "streamlock-bot <bot@example.com>"
CONFIG = f"""\
configOwners: ["@admin"]
git:
  author: {BOT}
access:
  shop:
    owners: ["@alice", "@example/shop-team"]
    pullers: [staging]
  staging:
    owners: ["@bob"]
  other:
    owners: ["@olga"]
"""
SHOP = "streams/shop/app.yaml"
STAGING = "streams/staging/web.yaml"
OTHER = "streams/other/tool.yaml"
LOCK = "locks/shop/app.lock.yaml"
REF = "quay.io/shop/app:1"
START = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def stream(name: str, tags: str) -> str:
    return (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\n"
        f"metadata:\n  name: {name}\nspec:\n  tags:\n{tags}"
    )


def docker_tag(name: str, reference: str) -> str:
    return f"  - name: {name}\n    from:\n      kind: DockerImage\n      name: {reference}\n"


def follow_tag(name: str, namespace: str, source: str) -> str:
    return (
        f"  - name: {name}\n    from:\n      kind: ImageStreamTag\n"
        f"      namespace: {namespace}\n      name: {source}\n"
    )


def digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


class Registry:
    """Serves one digest per pull spec."""

    def __init__(self) -> None:
        self.served: dict[str, str] = {}

    async def resolve_all(
        self, requests: Sequence[ImportRequest]
    ) -> Mapping[tuple[str, str, str], Observation]:
        return {
            r.key: Image(self.served[r.reference], created="2026-10-01T00:00:00Z")
            for r in requests
            if r.reference in self.served
        }


class Project:
    """The config repository; ``main`` has two reconciler bumps of shop/app:v1."""

    def __init__(self, repo: ConfigRepo) -> None:
        self.repo = repo
        self.registry = Registry()
        self.passes = 0

    @property
    def work(self) -> Path:
        return self.repo.work

    def reconcile(self, n: int) -> None:
        self.registry.served[REF] = digest(n)
        self.passes += 1
        options = PassOptions(
            push=False, now=START + timedelta(hours=self.passes), forced=frozenset({"shop/app"})
        )
        result = asyncio.run(run_pass(self.work, lambda _c, _r: self.registry, options))
        assert result.commits, result

    def branch(self, name: str = "pr") -> None:
        self.repo.git("checkout", "--quiet", "-b", name)

    def write(self, path: str, text: str) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, *paths: str) -> str:
        self.repo.git("add", "--all", *paths)
        self.repo.git("commit", "--quiet", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.repo.git("rev-parse", "HEAD").strip()

    def bot_commits(self) -> list[str]:
        return self.repo.git("log", "--format=%H", f"--author={BOT}", "main").split()

    def run(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, [*args, "--repo", str(self.work)])
        return result.exit_code, result.stdout, result.stderr

    def check(self, actor: str, *extra: str, base: str = "main") -> tuple[int, str, str]:
        return self.run("check-access", "--base", base, "--head", "pr", "--actor", actor, *extra)


@pytest.fixture
def project(config_repo: Callable[..., ConfigRepo]) -> Project:
    files = {
        "streamlock.yaml": CONFIG,
        SHOP: stream("app", docker_tag("v1", REF)),
        STAGING: stream("web", docker_tag("v1", "quay.io/staging/web:1")),
        OTHER: stream("tool", docker_tag("v1", "quay.io/other/tool:1")),
    }
    made = Project(config_repo(files))
    made.reconcile(1)
    made.reconcile(2)
    return made


# --- stream-owner ------------------------------------------------------------------------------


def test_owner_may_change_their_namespace(project: Project) -> None:
    """An owner's change to their namespace's streams passes."""
    project.branch()
    project.write(SHOP, stream("app", docker_tag("v1", REF) + docker_tag("v2", REF)))
    project.commit("shop/app: add v2")
    code, out, err = project.check("alice")
    assert (code, out) == (0, ""), err


def test_team_member_may_change_the_team_namespace(project: Project) -> None:
    """Membership of an owning team, given with --team, counts as ownership."""
    project.branch()
    project.write(SHOP, stream("app", docker_tag("v1", REF) + docker_tag("v2", REF)))
    project.commit("shop/app: add v2")
    assert project.check("dave", "--team", "@example/shop-team")[0] == 0


def test_non_owner_changing_a_namespace_fails_located(project: Project) -> None:
    """Changing another namespace's stream is one located message naming its owners."""
    project.branch()
    project.write(SHOP, stream("app", docker_tag("v1", REF) + docker_tag("v2", REF)))
    project.commit("shop/app: add v2")
    code, out, _ = project.check("bob")
    assert code == 1
    assert out.splitlines() == [
        f"{SHOP}:4:9: bob may not change streams of namespace shop; owners: @alice, "
        "@example/shop-team [stream-owner]"
    ]


def test_deleting_another_namespace_stream_fails(project: Project) -> None:
    """Deleting a stream file of a namespace the actor does not own is refused."""
    project.branch()
    project.repo.git("rm", "--quiet", OTHER)
    project.commit("drop other/tool")
    code, out, _ = project.check("alice")
    assert code == 1
    assert "alice may not delete streams of namespace other" in out


def test_moving_a_stream_into_a_foreign_namespace_fails(project: Project) -> None:
    """A file in the actor's folder that declares another namespace is judged by that one."""
    project.branch()
    text = stream("sneaky", docker_tag("v1", REF)).replace(
        "  name: sneaky\n", "  name: sneaky\n  namespace: other\n"
    )
    project.write("streams/shop/sneaky.yaml", text)
    project.commit("add a stream")
    code, out, _ = project.check("alice")
    assert code == 1
    assert "alice may not change streams of namespace other" in out


# --- lock-edit ---------------------------------------------------------------------------------


def test_hand_edited_lock_fails(project: Project) -> None:
    """A person's edit of a lock is refused at the lock, naming the commit."""
    project.branch()
    lock = (project.work / LOCK).read_text().replace(digest(2), digest(9))
    project.write(LOCK, lock)
    sha = project.commit("pin my image")
    code, out, _ = project.check("alice")
    assert code == 1
    assert out.splitlines() == [
        f"{LOCK}:1:1: changed by hand in {sha[:12]} (pin my image): only the reconciler's "
        "commits, a 'git revert' of them, or 'streamlock rollback --commit' may change locks "
        "[lock-edit]"
    ]


def test_revert_of_a_reconciler_commit_passes(project: Project) -> None:
    """``git revert`` of the reconciler's last bump may touch the lock."""
    project.branch()
    project.repo.git("revert", "--no-edit", project.bot_commits()[0])
    code, _, err = project.check("alice")
    assert code == 0, err


def test_revert_of_a_first_import_passes(project: Project) -> None:
    """``git revert`` of the reconciler's first import (the lock goes away) may touch it too."""
    first = project.bot_commits()[-1]
    project.repo.git("checkout", "--quiet", "-b", "pr", first)
    project.repo.git("revert", "--no-edit", first)
    assert not (project.work / LOCK).exists()
    code, _, err = project.check("alice", base=first)
    assert code == 0, err


def test_revert_with_an_extra_edit_fails(project: Project) -> None:
    """A revert amended with another lock change is no longer a revert."""
    project.branch()
    project.repo.git("revert", "--no-edit", "--no-commit", project.bot_commits()[0])
    text = (project.work / LOCK).read_text().replace("2026-10-01T00:00:00Z", "2020-01-01T00:00:00Z")
    project.write(LOCK, text)
    project.repo.git("commit", "--quiet", "--no-edit", "-a")
    code, out, _ = project.check("alice")
    assert code == 1
    assert "[lock-edit]" in out


def test_forged_revert_message_fails(project: Project) -> None:
    """A hand edit whose message claims to revert a reconciler commit is still a hand edit."""
    project.branch()
    lock = (project.work / LOCK).read_text().replace(digest(2), digest(9))
    project.write(LOCK, lock)
    project.commit(f'Revert "bump"\n\nThis reverts commit {project.bot_commits()[0]}.')
    assert project.check("alice")[0] == 1


def test_rollback_commit_passes(project: Project) -> None:
    """``streamlock rollback --commit`` output may touch the lock."""
    project.branch()
    code, _, err = project.run("rollback", "--commit", "shop/app:v1")
    assert code == 0, err
    code, _, err = project.check("alice")
    assert code == 0, err


def test_rollback_by_a_non_owner_fails(project: Project) -> None:
    """A rollback of another namespace's lock is the owners' call: refused at the lock."""
    project.branch()
    assert project.run("rollback", "--commit", "shop/app:v1")[0] == 0
    code, out, _ = project.check("bob")
    assert code == 1
    assert out.splitlines() == [
        f"{LOCK}:1:1: bob may not change the lock of namespace shop (in {project.head()[:12]}); "
        "owners: @alice, @example/shop-team [stream-owner]"
    ]


def test_commit_posing_as_the_reconciler_without_signature_fails(
    project: Project, tmp_path: Path
) -> None:
    """With signatures verified, a lock commit under the bot's name but unsigned is refused."""
    signers = tmp_path / "allowed_signers"
    signers.write_text("")
    project.repo.git("config", "gpg.format", "ssh")
    project.repo.git("config", "gpg.ssh.allowedSignersFile", str(signers))
    project.branch()
    lock = (project.work / LOCK).read_text().replace(digest(2), digest(9))
    project.write(LOCK, lock)
    name, email = BOT[:-1].split(" <")
    git(
        project.work,
        "-c",
        f"user.name={name}",
        "-c",
        f"user.email={email}",
        "commit",
        "--quiet",
        "-am",
        "shop/app: v1 bump",
    )
    code, out, _ = project.check("alice")
    assert code == 1
    assert "[lock-edit]" in out


def test_merge_of_main_with_new_reconciler_commits_passes(project: Project) -> None:
    """A branch that merges main after the reconciler bumped again only takes main's lock."""
    project.branch()
    project.write(SHOP, stream("app", docker_tag("v1", REF) + docker_tag("v2", REF)))
    project.commit("shop/app: add v2")
    project.repo.git("checkout", "--quiet", "main")
    project.reconcile(3)
    project.repo.git("checkout", "--quiet", "pr")
    project.repo.git("merge", "--quiet", "--no-edit", "main")
    code, _, err = project.check("alice", base="main~1")
    assert code == 0, err


# --- puller-grant ------------------------------------------------------------------------------


def test_reference_with_a_grant_passes(project: Project) -> None:
    """staging may follow shop's tags: shop grants it."""
    project.branch()
    tags = docker_tag("v1", "quay.io/staging/web:1") + follow_tag("shop", "shop", "app:v1")
    project.write(STAGING, stream("web", tags))
    project.commit("staging/web: follow shop")
    code, _, err = project.check("bob")
    assert code == 0, err


def test_reference_without_a_grant_fails_located(project: Project) -> None:
    """other may not follow shop's tags: one located message at the tag."""
    project.branch()
    tags = docker_tag("v1", "quay.io/other/tool:1") + follow_tag("shop", "shop", "app:v1")
    project.write(OTHER, stream("tool", tags))
    project.commit("other/tool: follow shop")
    code, out, _ = project.check("olga")
    assert code == 1
    assert out.splitlines() == [
        f"{OTHER}:14:18: other/tool:shop uses ImageStreamTag shop/app:v1, but namespace other "
        "is not in access.shop.pullers [puller-grant]"
    ]


def test_grant_added_by_a_non_owner_does_not_count(project: Project) -> None:
    """A pull request granting itself in streamlock.yaml is refused twice: config and puller."""
    project.branch()
    project.write(
        "streamlock.yaml", CONFIG.replace("pullers: [staging]", "pullers: [staging, other]")
    )
    tags = docker_tag("v1", "quay.io/other/tool:1") + follow_tag("shop", "shop", "app:v1")
    project.write(OTHER, stream("tool", tags))
    project.commit("other/tool: follow shop")
    code, out, _ = project.check("olga")
    assert code == 1
    assert [line.rsplit("[", 1)[1] for line in out.splitlines()] == [
        "config-owner]",
        "puller-grant]",
    ]


# --- config-owner ------------------------------------------------------------------------------


def test_config_owner_may_change_access(project: Project) -> None:
    """A config owner's change to access: passes."""
    project.branch()
    project.write("streamlock.yaml", CONFIG.replace('["@bob"]', '["@bob", "@carol"]'))
    project.commit("staging: add carol")
    code, _, err = project.check("admin")
    assert code == 0, err


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('["@bob"]', '["@bob", "@mallory"]', "access"),
        ("git:\n", "registries:\n- host: quay.io\n  auth: {helper: x}\ngit:\n", "registries"),
        ('configOwners: ["@admin"]', 'configOwners: ["@mallory"]', "configOwners"),
    ],
)
def test_non_owner_changing_protected_config_fails(
    project: Project, old: str, new: str, key: str
) -> None:
    """access, registries (credentials) and configOwners change only by a config owner."""
    project.branch()
    project.write("streamlock.yaml", CONFIG.replace(old, new))
    project.commit("config change")
    code, out, _ = project.check("bob")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 1 and f": {key}: bob may not change it" in lines[0]


def test_non_owner_may_change_the_pace(project: Project) -> None:
    """importInterval is a free setting: anyone may change it."""
    project.branch()
    project.write("streamlock.yaml", "importInterval: 5m\n" + CONFIG)
    project.commit("faster")
    assert project.check("bob")[0] == 0


# --- formats and bad input ---------------------------------------------------------------------


def _one_violation(project: Project) -> None:
    project.branch()
    project.write(SHOP, stream("app", docker_tag("v1", REF) + docker_tag("v2", REF)))
    project.commit("shop/app: add v2")


def test_github_format(project: Project) -> None:
    """--format github prints one ::error annotation per problem."""
    _one_violation(project)
    code, out, _ = project.check("bob", "--format", "github")
    assert code == 1
    assert out.splitlines() == [
        f"::error file={SHOP},line=4,col=9::bob may not change streams of namespace shop; "
        "owners: @alice, @example/shop-team"
    ]


def test_gitlab_format(project: Project) -> None:
    """--format gitlab prints Code Quality JSON, one issue per problem."""
    _one_violation(project)
    code, out, _ = project.check("bob", "--format", "gitlab")
    assert code == 1
    issues = json.loads(out)
    assert [(i["check_name"], i["location"]) for i in issues] == [
        ("streamlock-access/stream-owner", {"path": SHOP, "lines": {"begin": 4}})
    ]


def test_json_format(project: Project) -> None:
    """--format json prints rule, place and message of each problem."""
    _one_violation(project)
    code, out, _ = project.check("bob", "--format", "json")
    assert code == 1
    assert json.loads(out) == [
        {
            "rule": "stream-owner",
            "path": SHOP,
            "line": 4,
            "column": 9,
            "message": "bob may not change streams of namespace shop; owners: @alice, "
            "@example/shop-team",
        }
    ]


@pytest.mark.parametrize("fmt", ["github", "gitlab", "json"])
def test_clean_pull_request_passes_in_every_format(project: Project, fmt: str) -> None:
    """A pull request without problems exits 0 in every format."""
    _one_violation(project)
    code, out, _ = project.check("alice", "--format", fmt)
    assert code == 0
    assert out.strip() in ("", "[]")


def test_unknown_revision_is_a_clear_error(project: Project) -> None:
    """A revision that does not exist exits 1 with a message, not a traceback."""
    code, _, err = project.run(
        "check-access", "--base", "main", "--head", "nope", "--actor", "alice"
    )
    assert code == 1
    assert "unknown revision 'nope'" in err
    assert "Traceback" not in err


def test_broken_stream_file_is_judged_by_its_folder(project: Project) -> None:
    """A stream file that no longer parses still belongs to its folder's namespace."""
    project.branch()
    project.write(SHOP, "kind: [unclosed\n")
    project.commit("break it")
    code, out, err = project.check("bob")
    assert code == 1
    assert out.splitlines()[0].startswith(f"{SHOP}:1:1: bob may not change streams of namespace")
    assert "Traceback" not in err


def test_unreadable_config_by_a_non_owner_fails(project: Project) -> None:
    """A streamlock.yaml that no longer reads as YAML is a config change like any other."""
    project.branch()
    project.write("streamlock.yaml", "access: [unclosed\n")
    project.commit("break the config")
    code, out, _ = project.check("bob")
    assert code == 1
    assert out.startswith("streamlock.yaml:1:1: bob may not change streamlock.yaml")


# --- codeowners --------------------------------------------------------------------------------


def test_codeowners_writes_then_checks(project: Project) -> None:
    """codeowners writes .github/CODEOWNERS; --check then passes."""
    code, _, err = project.run("codeowners")
    assert code == 0, err
    text = (project.work / ".github" / "CODEOWNERS").read_text()
    assert "/streams/shop/ @alice @example/shop-team\n" in text
    assert "/locks/ bot@example.com\n" in text
    assert project.run("codeowners", "--check")[0] == 0


def test_codeowners_check_fails_after_an_access_edit(project: Project) -> None:
    """After an access: edit, --check exits 1 naming the stale line."""
    assert project.run("codeowners")[0] == 0
    project.write("streamlock.yaml", CONFIG.replace('["@bob"]', '["@bob", "@carol"]'))
    code, out, _ = project.run("codeowners", "--check")
    assert code == 1
    assert out.splitlines() == [
        ".github/CODEOWNERS:7:1: '/streams/staging/ @bob' should read "
        "'/streams/staging/ @bob @carol' (run 'streamlock codeowners')"
    ]


def test_codeowners_refuses_to_overwrite_a_hand_written_file(project: Project) -> None:
    """A CODEOWNERS that streamlock did not write is left alone, with a located error."""
    project.write(".github/CODEOWNERS", "* @someone\n")
    code, _, err = project.run("codeowners")
    assert code == 1
    assert ".github/CODEOWNERS:1:1: written by hand" in err
    assert (project.work / ".github" / "CODEOWNERS").read_text() == "* @someone\n"


def test_codeowners_gitlab_flavor(project: Project) -> None:
    """--flavor gitlab writes .gitlab/CODEOWNERS with a section header."""
    assert project.run("codeowners", "--flavor", "gitlab")[0] == 0
    text = (project.work / ".gitlab" / "CODEOWNERS").read_text()
    assert text.splitlines()[1] == codeowners.GITLAB_SECTION


# --- every rule in every format ----------------------------------------------------------------


def _breaks_stream_owner(project: Project) -> str:
    project.write(SHOP, stream("app", docker_tag("v1", REF) + docker_tag("v2", REF)))
    return "bob"


def _breaks_lock_edit(project: Project) -> str:
    project.write(LOCK, (project.work / LOCK).read_text().replace(digest(2), digest(9)))
    return "alice"


def _breaks_puller_grant(project: Project) -> str:
    tags = docker_tag("v1", "quay.io/other/tool:1") + follow_tag("shop", "shop", "app:v1")
    project.write(OTHER, stream("tool", tags))
    return "olga"


def _breaks_config_owner(project: Project) -> str:
    project.write("streamlock.yaml", CONFIG.replace('["@bob"]', '["@bob", "@mallory"]'))
    return "bob"


BREAKS = {
    "stream-owner": (_breaks_stream_owner, SHOP, 4),
    "lock-edit": (_breaks_lock_edit, LOCK, 1),
    "puller-grant": (_breaks_puller_grant, OTHER, 14),
    "config-owner": (_breaks_config_owner, "streamlock.yaml", 4),
}


def _reported(fmt: str, out: str) -> list[tuple[str, str, int]]:
    """(rule or '', path, line) of each problem in the output of ``fmt``."""
    if fmt == "json":
        return [(p["rule"], p["path"], p["line"]) for p in json.loads(out)]
    if fmt == "gitlab":
        return [
            (
                i["check_name"].split("/", 1)[1],
                i["location"]["path"],
                i["location"]["lines"]["begin"],
            )
            for i in json.loads(out)
        ]
    found = []
    for line in out.splitlines():
        if fmt == "github":
            head = line.removeprefix("::error ").split("::", 1)[0]
            fields = dict(part.split("=", 1) for part in head.split(","))
            found.append(("", fields["file"], int(fields["line"])))
        else:
            path, number, _ = line.split(":", 2)
            found.append((line.rsplit("[", 1)[1].rstrip("]"), path, int(number)))
    return found


@pytest.mark.parametrize("fmt", ["text", "github", "gitlab", "json"])
@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_each_rule_fails_in_each_format(project: Project, rule: str, fmt: str) -> None:
    """Each rule, broken alone, exits 1 with one problem at its place, in every format."""
    breaks, path, line = BREAKS[rule]
    project.branch()
    actor = breaks(project)
    project.commit(f"break {rule}")
    code, out, _ = project.check(actor, "--format", fmt)
    assert code == 1
    assert _reported(fmt, out) == [("" if fmt == "github" else rule, path, line)]
