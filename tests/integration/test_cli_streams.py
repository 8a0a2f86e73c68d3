"""The commands for people, in-process on real Git repositories, composed with real passes.

Passes run the real glue (``reconcile.run_pass``) with a registry stand-in that serves a fixed
digest per pull spec, so each test can move a tag on the "registry" in one line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import StreamlockGroup, cli
from reconciler.cli_streams import COMMANDS
from reconciler.image import Image, ImportFailure, ImportRequest, Observation
from reconciler.lockfile import StreamLock, loads
from reconciler.reconcile import PassOptions, PassResult, run_pass
from reconciler.trailers import parse_message
from tests.fixtures.gitremote import IDENTITY, ConfigRepo

STREAM_FILE = "streams/shop/images.yaml"
LOCK = "locks/shop/app.lock.yaml"
REPO = "registry.example.com/shop/app"
TEST_REF = f"{REPO}:test"
START = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
STREAM = f"""\
# Images of the shop.
apiVersion: image.openshift.io/v1
kind: ImageStream
metadata:
  name: app
spec:
  tags:
  # test follows the registry
  - name: test
    from:
      kind: DockerImage
      name: {TEST_REF}
    importPolicy:
      scheduled: true
"""

GROUP = StreamlockGroup(
    name="streamlock", commands={**cli.commands, **{c.name: c for c in COMMANDS}}
)


def digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


class Registry:
    """Serves one digest per pull spec; what a test sets is what the next pass sees."""

    def __init__(self) -> None:
        self.served: dict[str, str] = {}
        self.failing: dict[str, ImportFailure] = {}

    async def resolve_all(
        self, requests: Sequence[ImportRequest]
    ) -> Mapping[tuple[str, str, str], Observation]:
        answers: dict[tuple[str, str, str], Observation] = {
            r.key: self.failing[r.reference] for r in requests if r.reference in self.failing
        }
        answers.update(
            {
                r.key: Image(
                    self.served[r.reference],
                    created="2026-10-01T00:00:00Z",
                    labels={"org.opencontainers.image.version": self.served[r.reference][7:9]},
                )
                for r in requests
                if r.reference in self.served and r.reference not in self.failing
            }
        )
        return answers


class Shop:
    """A config repository with shop/app:test, a registry stand-in and a clock."""

    def __init__(self, repo: ConfigRepo) -> None:
        self.repo = repo
        self.registry = Registry()
        self.passes = 0

    @property
    def work(self) -> Path:
        return self.repo.work

    def serve(self, n: int, ref: str = TEST_REF) -> None:
        self.registry.served[ref] = digest(n)

    def reconcile(self) -> PassResult:
        """One committed, unpushed pass, an hour after the previous one."""
        self.passes += 1
        options = PassOptions(push=False, now=START + timedelta(hours=self.passes))
        return asyncio.run(run_pass(self.work, lambda _config, _root: self.registry, options))

    def run(self, *args: str) -> tuple[int, str, str]:
        """The CLI in-process on this repository: (exit code, stdout, stderr)."""
        result = CliRunner().invoke(GROUP, [*args, "--repo", str(self.work)])
        return result.exit_code, result.stdout, result.stderr

    def lock(self, path: str = LOCK) -> StreamLock:
        return loads((self.work / path).read_bytes())

    def images(self) -> dict[str, str]:
        return {tag: entry.image for tag, entry in self.lock().tags.items()}

    def head(self) -> str:
        return self.repo.git("rev-parse", "HEAD").strip()

    def last_commit(self) -> dict[str, object]:
        author, subject, message = self.repo.git(
            "show", "-s", "--format=%an <%ae>%x00%s%x00%B"
        ).split("\x00")
        files = self.repo.git("diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD")
        return {"author": author, "subject": subject, "message": message, "files": files.split()}


@pytest.fixture
def shop(config_repo: Callable[..., ConfigRepo]) -> Shop:
    return Shop(config_repo({STREAM_FILE: STREAM}))


@pytest.fixture
def imported(shop: Shop) -> Shop:
    """test imported twice: digest 1, then digest 2."""
    shop.serve(1)
    assert shop.reconcile().commits
    shop.serve(2)
    assert shop.reconcile().commits
    return shop


# --- tag -----------------------------------------------------------------------------------------


def test_tag_with_commit_commits_only_the_stream_file(imported: Shop):
    """tag --commit makes one commit by the user that changes only the stream file."""
    code, _, err = imported.run("tag", "--commit", "shop/app:test", "shop/app:prod")
    assert code == 0, err
    commit = imported.last_commit()
    assert commit["files"] == [STREAM_FILE]
    assert commit["subject"] == f"shop/app: tag prod ← app@sha256:{digest(2)[7:14]} (promotion)"
    assert commit["author"] == f"{IDENTITY[0]} <{IDENTITY[1]}>"
    assert parse_message(str(commit["message"])) == []


def test_promotion_pins_prod_and_later_test_bumps_leave_it(imported: Shop):
    """tag test prod, reconcile: prod has test's digest; test moves on, prod stays."""
    assert imported.run("tag", "--commit", "shop/app:test", "shop/app:prod")[0] == 0
    imported.reconcile()
    assert imported.images() == {"test": digest(2), "prod": digest(2)}
    imported.serve(3)
    imported.reconcile()
    assert imported.images() == {"test": digest(3), "prod": digest(2)}


def test_an_alias_makes_prod_follow_test(imported: Shop):
    """tag --alias: prod follows test's next bumps."""
    assert imported.run("tag", "--alias", "--commit", "shop/app:test", "shop/app:prod")[0] == 0
    imported.serve(3)
    imported.reconcile()
    assert imported.images() == {"test": digest(3), "prod": digest(3)}


def test_tag_without_commit_only_edits_the_file(imported: Shop):
    """Without --commit the stream file is edited for review and nothing is committed."""
    head = imported.head()
    code, _, err = imported.run("tag", "shop/app:test", "shop/app:prod")
    assert code == 0
    assert imported.head() == head
    assert imported.repo.git("status", "--porcelain").split() == ["M", STREAM_FILE]
    assert "review the change" in err


def test_tag_of_a_tag_never_imported_asks_for_a_reconcile(shop: Shop):
    """Promoting a tag that has no image yet fails and edits nothing."""
    code, _, err = shop.run("tag", "shop/app:test", "shop/app:prod")
    assert code == 1
    assert "run streamlock reconcile first" in err
    assert (shop.work / STREAM_FILE).read_text() == STREAM


def test_tag_from_a_registry_creates_a_new_stream_that_reconciles(imported: Shop):
    """--source=docker into a new stream writes streams/<ns>/<name>.yaml, which then imports."""
    imported.serve(7, "quay.io/web/site:1")
    code, _, err = imported.run(
        "tag", "--source=docker", "--scheduled", "--commit", "quay.io/web/site:1", "web/site:live"
    )
    assert code == 0, err
    assert imported.last_commit()["files"] == ["streams/web/site.yaml"]
    imported.reconcile()
    assert imported.lock("locks/web/site.lock.yaml").tags["live"].image == digest(7)


def test_tag_refuses_an_edit_that_would_leave_the_stream_invalid(imported: Shop):
    """A kept reference: true that a new mutable pull spec would break refuses the edit."""
    path = imported.work / STREAM_FILE
    pinned = f"{REPO}@{digest(2)}"
    text = (
        STREAM
        + f"  - name: ref\n    reference: true\n    from: {{kind: DockerImage, name: {pinned}}}\n"
    )
    path.write_text(text)
    code, _, err = imported.run("tag", "--source=docker", "quay.io/web/site:1", "shop/app:ref")
    assert code == 1
    assert "would make image stream shop/app invalid" in err
    assert "reference: true needs a digest pull spec" in err
    assert path.read_text() == text


def test_tagging_a_held_tag_warns_that_its_lock_stays(imported: Shop):
    """tag keeps a hold; the command says the lock will not follow, and the pass agrees."""
    held = "  - name: prod\n    annotations: {streamlock.dev/hold: QA}\n"
    held += f"    from: {{kind: DockerImage, name: '{REPO}:prod'}}\n"
    imported.repo.commit({STREAM_FILE: STREAM + held}, "prod is held", push=False)
    imported.serve(5, f"{REPO}:prod")
    imported.reconcile()
    code, _, err = imported.run("tag", "--commit", "shop/app:test", "shop/app:prod")
    assert code == 0, err
    assert "! shop/app:prod is held (QA): its lock keeps the current image" in err
    imported.reconcile()
    assert imported.images()["prod"] == digest(5)


def test_an_edit_keeps_the_files_byte_order_mark(imported: Shop):
    """A stream file saved with a UTF-8 BOM keeps it; only the new tag's lines are added."""
    path = imported.work / STREAM_FILE
    path.write_bytes(b"\xef\xbb\xbf" + STREAM.encode())
    code, _, err = imported.run("tag", "shop/app:test", "shop/app:prod")
    assert code == 0, err
    added = (
        f"  - name: prod\n    from:\n      kind: ImageStreamImage\n      name: app@{digest(2)}\n"
    )
    assert path.read_bytes() == b"\xef\xbb\xbf" + (STREAM + added).encode()


def test_tag_delete_removes_the_tag_from_the_spec(imported: Shop):
    """-d deletes the tag; the next pass drops its lock entry."""
    assert imported.run("tag", "--commit", "shop/app:test", "shop/app:prod")[0] == 0
    imported.reconcile()
    code, _, err = imported.run("tag", "-d", "--commit", "shop/app:prod")
    assert code == 0, err
    imported.reconcile()
    assert imported.images() == {"test": digest(2)}
    assert (imported.work / STREAM_FILE).read_text() == STREAM


def test_deleting_a_followed_tag_warns_about_its_followers(imported: Shop):
    """tag -d names the tags left following the deleted one."""
    assert imported.run("tag", "--alias", "--commit", "shop/app:test", "shop/app:prod")[0] == 0
    code, _, err = imported.run("tag", "-d", "shop/app:test")
    assert code == 0, err
    assert "! shop/app:prod follows a deleted tag and will fail until it changes" in err


def test_a_tag_without_destination_is_a_usage_error(imported: Shop):
    """tag with only SRC exits 64, like every usage error."""
    assert imported.run("tag", "shop/app:test")[0] == 64


@pytest.mark.parametrize(
    "args",
    [
        ("tag", "-d", "--alias", "shop/app:prod"),
        ("tag", "--scheduled", "shop/app:test", "shop/app:prod"),
        ("tag", "shop/app:test", "shop/app:prod", "shop/app:prod"),
        ("tag", "--alias", "shop/app@" + "ab" * 6, "shop/app:prod"),
    ],
)
def test_contradictory_tag_options_are_usage_errors(imported: Shop, args: tuple[str, ...]):
    """Options that cannot go together exit 64 before anything is written."""
    assert imported.run(*args)[0] == 64
    assert imported.repo.git("status", "--porcelain") == ""


def test_a_pull_spec_given_as_src_without_source_docker_hints_at_it(imported: Shop):
    """A SRC that is neither a stream nor names a registry host: a usage error naming the fix."""
    code, _, err = imported.run("tag", "nginx:1.4", "shop/app:prod")
    assert code == 64
    assert "for a registry image, add --source=docker" in err
    assert imported.repo.git("status", "--porcelain") == ""


def test_a_registry_src_without_source_is_inferred_as_oc_tag_does(imported: Shop):
    """quay.io/org/app:1.4 names a registry host, so it is taken as --source=docker."""
    code, _, err = imported.run("tag", "quay.io/org/app:1.4", "shop/app:prod")
    assert code == 0, err
    text = (imported.work / STREAM_FILE).read_text()
    assert "kind: DockerImage" in text and "quay.io/org/app:1.4" in text


def test_promotion_into_another_namespace_needs_a_grant(imported: Shop):
    """Pinning shop's image in staging without access.shop.pullers is refused."""
    code, _, err = imported.run("tag", "shop/app:test", "staging/app:prod")
    assert code == 1
    assert "grant it in streamlock.yaml access.shop.pullers" in err


def test_an_alias_that_would_close_a_cycle_is_refused(imported: Shop):
    """prod follows test, so test cannot follow prod."""
    assert imported.run("tag", "--alias", "--commit", "shop/app:test", "shop/app:prod")[0] == 0
    code, _, err = imported.run("tag", "--alias", "shop/app:prod", "shop/app:test")
    assert code == 64
    assert "cycle" in err


def test_commit_refuses_a_file_with_uncommitted_changes(imported: Shop):
    """--commit never sweeps a person's unfinished edit into the commit."""
    path = imported.work / STREAM_FILE
    path.write_text(path.read_text() + "# wip\n")
    code, _, err = imported.run("tag", "--commit", "shop/app:test", "shop/app:prod")
    assert code == 1
    assert "uncommitted changes" in err


def test_commit_without_a_git_identity_writes_nothing(imported: Shop):
    """--commit needs the person's git identity; without one nothing is edited."""
    imported.repo.git("config", "user.name", "")
    code, _, err = imported.run("tag", "--commit", "shop/app:test", "shop/app:prod")
    assert code == 1
    assert "no git identity to commit with" in err and "or run without --commit" in err
    assert imported.repo.git("status", "--porcelain") == ""


# --- rollback ------------------------------------------------------------------------------------


def test_rollback_writes_the_previous_image_to_the_lock(imported: Shop):
    """rollback pins the previous image in the lock, with the newer history dropped."""
    code, _, err = imported.run("rollback", "shop/app:test")
    assert code == 0, err
    entry = imported.lock().tags["test"]
    assert entry.image == digest(1)
    assert [item.image for item in entry.history] == [digest(1)]
    assert "git revert" in err


def test_rollback_writes_the_lock_a_git_revert_of_the_last_bump_would(imported: Shop):
    """The rolled-back lock is byte-identical to the lock before the last bump."""
    before_bump = imported.repo.git("show", f"HEAD~1:{LOCK}")
    assert imported.run("rollback", "shop/app:test")[0] == 0
    assert (imported.work / LOCK).read_text() == before_bump


def test_a_committed_rollback_is_kept_until_the_registry_moves_on(imported: Shop):
    """After rollback --commit a pass keeps digest 1 while the registry serves 2; 3 moves it."""
    assert imported.run("rollback", "--commit", "shop/app:test")[0] == 0
    assert imported.reconcile().commits == ()
    assert imported.images() == {"test": digest(1)}
    imported.serve(3)
    imported.reconcile()
    assert imported.images() == {"test": digest(3)}


def test_a_second_rollback_names_the_image_the_reconciler_last_committed(imported: Shop):
    """After two rollbacks the rule guards the reconciler's own last image, as the output says."""
    imported.serve(3)
    imported.reconcile()
    assert imported.run("rollback", "--commit", "shop/app:test")[0] == 0
    code, _, err = imported.run("rollback", "--commit", "shop/app:test")
    assert code == 0, err
    assert f"still serves sha256:{digest(3)[7:19]}, the image it last" in " ".join(err.split())
    imported.reconcile()
    assert imported.images() == {"test": digest(1)}
    imported.serve(2)
    imported.reconcile()
    assert imported.images() == {"test": digest(2)}


def test_a_rollback_commit_touches_only_the_lock_and_carries_no_trailers(imported: Shop):
    """The commit is a person's revert: no Streamlock-* trailers, so the revert rule sees it."""
    assert imported.run("rollback", "--commit", "shop/app:test")[0] == 0
    commit = imported.last_commit()
    assert commit["files"] == [LOCK]
    assert commit["subject"] == f"shop/app: roll back test {digest(2)[7:14]} → {digest(1)[7:14]}"
    assert parse_message(str(commit["message"])) == []


def test_rollback_pin_edits_the_spec_and_not_the_lock(imported: Shop):
    """--pin writes ImageStreamImage app@<old digest> into the stream file."""
    lock = (imported.work / LOCK).read_bytes()
    code, _, err = imported.run("rollback", "--pin", "--commit", "shop/app:test")
    assert code == 0, err
    assert f"name: app@{digest(1)}" in (imported.work / STREAM_FILE).read_text()
    assert (imported.work / LOCK).read_bytes() == lock
    imported.reconcile()
    assert imported.images() == {"test": digest(1)}


def test_rollback_without_an_older_image_fails(shop: Shop):
    """A tag imported once has nothing to roll back to."""
    shop.serve(1)
    shop.reconcile()
    code, _, err = shop.run("rollback", "shop/app:test")
    assert code == 1
    assert "no revision 1" in err


# --- read commands -------------------------------------------------------------------------------


def test_resolve_prints_only_the_pull_spec(imported: Shop):
    """resolve ns/stream:tag prints the pull spec and nothing else on stdout."""
    code, out, _ = imported.run("resolve", "shop/app:test")
    assert (code, out) == (0, f"{REPO}@{digest(2)}\n")


def test_resolve_finds_an_older_image_by_prefix(imported: Shop):
    """resolve ns/stream@sha256:<12 hex> finds an image in history."""
    code, out, _ = imported.run("resolve", "-n", "shop", f"app@{digest(1)[:19]}")
    assert (code, out) == (0, f"{REPO}@{digest(1)}\n")


def test_describe_json_carries_each_tag(imported: Shop):
    """describe -o json names the file, the source and the images of each tag."""
    code, out, _ = imported.run("describe", "shop/app", "-o", "json")
    data = json.loads(out)
    assert code == 0
    assert (data["file"], data["lock"]) == (STREAM_FILE, LOCK)
    assert data["tags"][0]["from"] == {"kind": "DockerImage", "name": TEST_REF}
    assert [h["image"] for h in data["tags"][0]["history"]] == [digest(2), digest(1)]


def test_describe_prints_like_oc(imported: Shop):
    """describe prints Name/Namespace headers and the current image marked with '*'."""
    code, out, _ = imported.run("describe", "shop/app")
    assert code == 0
    assert out.startswith("Name:           app\nNamespace:      shop\n")
    assert f"  * {REPO}@{digest(2)}\n" in out


def test_history_lists_revisions_newest_first(imported: Shop):
    """history prints a header and one row per image, revision 0 first."""
    code, out, _ = imported.run("history", "shop/app:test")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["REVISION", "IMAGE", "CREATED", "IMPORTED", "AGE"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["0", digest(2)[:19]],
        ["1", digest(1)[:19]],
    ]


def test_set_image_lookup_commits_the_stream_file(imported: Shop):
    """set image-lookup --commit adds lookupPolicy.local: true in a commit of its own."""
    code, _, err = imported.run("set", "image-lookup", "--commit", "shop/app")
    assert code == 0, err
    assert imported.last_commit()["files"] == [STREAM_FILE]
    assert (
        "  lookupPolicy:\n    local: true\n  tags:\n" in (imported.work / STREAM_FILE).read_text()
    )


def test_a_lock_folder_linked_out_of_the_repository_is_not_read(imported: Shop, tmp_path: Path):
    """A symlink anywhere on a lock's path is refused, not only the lock file itself."""
    outside = tmp_path / "outside"
    (imported.work / "locks").rename(outside)
    (imported.work / "locks").symlink_to(outside)
    code, out, err = imported.run("resolve", "shop/app:test")
    assert (code, out) == (1, "")
    assert "locks is a symlink" in err


def test_commit_in_a_repository_below_the_git_top_names_the_full_path(
    config_repo: Callable[..., ConfigRepo],
):
    """With streams/ in a subfolder of the Git work tree, --commit commits the file there."""
    shop = Shop(config_repo({f"platform/{STREAM_FILE}": STREAM}))
    result = CliRunner().invoke(
        GROUP,
        ["set", "image-lookup", "--commit", "shop/app", "--repo", str(shop.work / "platform")],
    )
    assert result.exit_code == 0, result.stderr
    assert shop.last_commit()["files"] == [f"platform/{STREAM_FILE}"]
    assert shop.repo.git("status", "--porcelain") == ""


def test_commands_on_a_missing_stream_say_it_is_not_found(imported: Shop):
    """describe and set image-lookup of an unknown stream fail with exit 1 and write nothing."""
    for args in (("describe", "shop/nope"), ("set", "image-lookup", "shop/nope")):
        code, _, err = imported.run(*args)
        assert code == 1
        assert err.startswith("✗ image stream shop/nope not found; no file under streams/")
    assert imported.repo.git("status", "--porcelain") == ""


@pytest.mark.parametrize(
    "command", ["describe", "history", "resolve", "tag", "rollback", "set", "set image-lookup"]
)
def test_help_is_plain_terminal_text(command: str):
    """--help of the commands for people shows no reST markup such as ``oc tag``."""
    result = CliRunner().invoke(GROUP, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "``" not in result.stdout


def test_describe_shows_a_respected_revert_and_the_digest_it_keeps_out(imported: Shop):
    """After git revert of a bump, describe says the revert is respected and names the waiting
    digest, in text and in -o json."""
    imported.repo.git("revert", "--no-edit", "HEAD")
    code, out, err = imported.run("describe", "shop/app:test")
    assert code == 0, err
    assert f"revert respected: a person moved it away from {digest(2)[:19]}" in out
    code, out, _ = imported.run("describe", "shop/app:test", "-o", "json")
    [tag] = json.loads(out)["tags"]
    assert tag["revertRespected"] == {"waiting": digest(2)}


def test_rollback_commit_after_an_uncommitted_rollback_names_the_real_reason(imported: Shop):
    """rollback, then rollback --commit: the lock's uncommitted rollback is named, not a
    missing revision."""
    assert imported.run("rollback", "shop/app:test")[0] == 0
    code, _, err = imported.run("rollback", "--commit", "shop/app:test")
    assert code == 1
    assert "locks/shop/app.lock.yaml has uncommitted changes" in err
    assert "no revision" not in err


def test_a_reverted_away_image_is_marked_and_can_be_rolled_forward_to(imported: Shop):
    """After git revert of a bump, describe marks the reverted-away image and rollback --to +1
    goes forward to it, with the lock entry the reconciler committed for it."""
    imported.repo.git("revert", "--no-edit", "HEAD")
    assert imported.images()["test"] == digest(1)
    _, out, _ = imported.run("describe", "shop/app:test")
    assert f"↷ {digest(2)} (reverted away from" in out
    code, _, err = imported.run("rollback", "--to", "+1", "shop/app:test")
    assert code == 0, err
    assert imported.images()["test"] == digest(2)
    assert "rolled forward to" in err


def test_describe_shows_the_last_failed_import_until_the_tag_imports_again(imported: Shop):
    """A failed import is never committed, but describe shows the last one this checkout met
    (text and -o json), and forgets it once the tag imports again."""
    imported.registry.failing[TEST_REF] = ImportFailure("ManifestUnknown", "1.0: manifest unknown")
    imported.reconcile()
    _, out, _ = imported.run("describe", "shop/app:test")
    assert "last import failed" in out and "ManifestUnknown: 1.0: manifest unknown" in out
    _, out, _ = imported.run("describe", "shop/app:test", "-o", "json")
    [tag] = json.loads(out)["tags"]
    assert tag["lastFailure"]["reason"] == "ManifestUnknown"
    assert tag["image"] == digest(2)  # the pin is kept
    del imported.registry.failing[TEST_REF]
    imported.reconcile()
    _, out, _ = imported.run("describe", "shop/app:test")
    assert "last import failed" not in out
