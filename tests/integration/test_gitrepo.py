"""The Git shell against real repositories: commits, pushes, review branches, the trailer index."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import gitrepo
from reconciler.errors import GitError, InputError
from reconciler.gitrepo import GitRepo, TrailerIndex, review_branch
from reconciler.trailers import TrailerBlock, format_message
from tests.fixtures.gitremote import BRANCH, IDENTITY, ConfigRepo, git

BOT = "streamlock <bot@streamlock.invalid>"
LOCK = "locks/shop/app.lock.yaml"
SOURCE = "registry.example.com/shop/app:1.4"
MakeRepo = Callable[..., ConfigRepo]


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


@pytest.fixture
def origin(config_repo: MakeRepo) -> ConfigRepo:
    return config_repo({"streams/shop/app.yaml": "kind: ImageStream\n", "README": "hi\n"})


@pytest.fixture
def repo(origin: ConfigRepo) -> GitRepo:
    return GitRepo.open(origin.work)


def bump(repo: GitRepo, tag: str, image: str, previous: str | None, source: str = SOURCE) -> str:
    """A reconciler-style commit of one tag's new image."""
    block = TrailerBlock(f"shop/app:{tag}", source, previous, image)
    message = format_message(f"shop/app: {tag}", "from: x", [block])
    return repo.commit({LOCK: f"{tag}: {image}\n".encode()}, message, BOT)


def changed_paths(origin: ConfigRepo, sha: str) -> list[str]:
    out = origin.git("diff-tree", "--no-commit-id", "--name-status", "-r", "--root", sha)
    return sorted(out.splitlines())


# --- opening -----------------------------------------------------------------------------------


def test_open_refuses_a_directory_outside_git(tmp_path: Path) -> None:
    """Opening a plain directory fails with a hint to init or clone."""
    with pytest.raises(GitError, match="not inside a git repository") as caught:
        GitRepo.open(tmp_path)
    assert "git init" in str(caught.value)


def test_open_refuses_a_bare_repository(origin: ConfigRepo) -> None:
    """A bare repository has no working tree to reconcile."""
    with pytest.raises(GitError, match="is a bare repository"):
        GitRepo.open(origin.remote)


def test_open_finds_the_root_from_a_subdirectory(origin: ConfigRepo) -> None:
    """A path inside the working tree opens the repository at its top."""
    assert GitRepo.open(origin.work / "streams" / "shop").root == origin.work.resolve()


def test_open_refuses_the_git_directory_itself(origin: ConfigRepo) -> None:
    """Inside .git there is no working tree; git's reason is in the error."""
    with pytest.raises(GitError, match=r"no working tree.*must be run in a work tree"):
        GitRepo.open(origin.work / ".git")


def test_open_refuses_a_path_that_is_no_directory(tmp_path: Path) -> None:
    """A missing directory is named as such."""
    with pytest.raises(GitError, match="no such directory"):
        GitRepo.open(tmp_path / "missing")


def test_head_is_none_on_an_unborn_branch(tmp_path: Path) -> None:
    """A fresh repository has no head and reads no files."""
    git(tmp_path, "init", "--quiet", "repo")
    repo = GitRepo.open(tmp_path / "repo")
    assert (repo.head(), repo.read("a")) == (None, None)


def test_has_remote(repo: GitRepo) -> None:
    """A configured remote is known; another name is not."""
    assert (repo.branch(), repo.has_remote("origin"), repo.has_remote("nope")) == (
        BRANCH,
        True,
        False,
    )


def test_commits_lists_unpushed_commits_with_identity_and_paths(
    origin: ConfigRepo, repo: GitRepo
) -> None:
    """Recovery sees who made each unpushed commit and what it touched, newest first."""
    first = repo.commit({LOCK: b"x\n"}, "bump\n\nbody", BOT)
    second = origin.commit({"notes/a.txt": "a\n"}, "note", push=False)
    found = repo.commits(f"origin/{BRANCH}..HEAD")
    assert [c.sha for c in found] == [second, first]
    assert found[1].author == found[1].committer == ("streamlock", "bot@streamlock.invalid")
    assert (found[1].subject, found[1].paths) == ("bump", (LOCK,))
    assert found[0].author == IDENTITY and found[0].paths == ("notes/a.txt",)


def test_commits_reports_parents_and_merges(origin: ConfigRepo, repo: GitRepo) -> None:
    """Each unpushed commit carries its parents: one for a commit, two for a merge."""
    base = origin.head()
    origin.git("checkout", "--quiet", "-b", "side")
    side = origin.commit({"notes/b.txt": "b\n"}, "side", push=False)
    origin.git("checkout", "--quiet", BRANCH)
    first = origin.commit({"notes/a.txt": "a\n"}, "note", push=False)
    origin.git("merge", "--quiet", "--no-ff", "-m", "merge", "side")
    merge, *rest = repo.commits(f"origin/{BRANCH}..HEAD")
    assert merge.parents == (first, side)
    assert sorted(c.parents for c in rest) == sorted([(base,), (base,)])


def test_commits_reads_a_message_that_is_not_utf8(origin: ConfigRepo, repo: GitRepo) -> None:
    """A person's commit message in another encoding is listed, not a crash."""
    (origin.work / "msg").write_bytes(b"caf\xe9\n")
    (origin.work / "notes").mkdir()
    (origin.work / "notes" / "a.txt").write_text("a\n")
    origin.git("add", "notes/a.txt")
    tree = origin.git("write-tree").strip()
    sha = origin.git(
        "-c", "i18n.commitEncoding=latin1", "commit-tree", tree, "-p", "HEAD", "-F", "msg"
    )
    origin.git("update-ref", "HEAD", sha.strip())
    [commit] = repo.commits(f"origin/{BRANCH}..HEAD")
    assert commit.subject == "caf\ufffd" and commit.paths == ("notes/a.txt",)


def test_fetch_of_a_missing_branch_says_so(repo: GitRepo) -> None:
    """A remote without the watched branch is a clear error with the command that fixes it."""
    with pytest.raises(GitError, match="has no branch 'nope'") as caught:
        repo.fetch("origin", "nope")
    assert "git push -u origin nope" in str(caught.value)


def test_user_identity_is_what_git_commit_would_use(origin: ConfigRepo, repo: GitRepo) -> None:
    """The person's identity comes from git config, without the timestamp git var adds."""
    origin.git("config", "user.name", "Ada Person")
    assert repo.user_identity() == "Ada Person <test@streamlock.invalid>"


def test_an_empty_user_name_is_no_identity(origin: ConfigRepo, repo: GitRepo) -> None:
    """Without a usable name git refuses to commit; so does the CLI, with a hint."""
    origin.git("config", "user.name", "")
    with pytest.raises(GitError, match="no git identity") as caught:
        repo.user_identity()
    assert "user.name" in str(caught.value)


# --- state and reading -------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["untracked", "unstaged", "staged"])
def test_is_clean_sees_changes_under_paths(origin: ConfigRepo, repo: GitRepo, change: str) -> None:
    """Untracked, unstaged and staged changes under a path all make it dirty."""
    target = origin.work / (
        "streams/shop/new.yaml" if change == "untracked" else "streams/shop/app.yaml"
    )
    target.write_text("changed\n")
    if change == "staged":
        origin.git("add", str(target))
    assert not repo.is_clean(["streams"])


def test_changed_paths_names_each_file_exactly(origin: ConfigRepo, repo: GitRepo) -> None:
    """Untracked files in a new folder are listed one by one, odd names as they are."""
    (origin.work / "streams" / "team").mkdir()
    names = ["streams/team/a b.yaml", 'streams/team/q"\tü.yaml', "streams/team/z.yaml"]
    for name in names:
        (origin.work / name).write_text("x\n")
    assert repo.changed_paths(["streams"]) == sorted(names)


def test_changed_paths_lists_a_name_that_is_not_utf8(origin: ConfigRepo, repo: GitRepo) -> None:
    """A file name in another encoding is listed with a replacement character, not a crash."""
    (origin.work / "streams").joinpath(
        b"caf\xe9.yaml".decode("utf-8", "surrogateescape")
    ).write_text("x\n")
    assert repo.changed_paths(["streams"]) == ["streams/caf\ufffd.yaml"]


def test_branch_refuses_a_detached_head(origin: ConfigRepo, repo: GitRepo) -> None:
    """A detached HEAD has no branch to reconcile: a clear error with a hint."""
    origin.git("checkout", "--quiet", "--detach")
    with pytest.raises(GitError, match="HEAD is detached") as caught:
        repo.branch()
    assert caught.value.hint == "check out the branch to reconcile"


def test_changed_paths_takes_paths_literally(origin: ConfigRepo, repo: GitRepo) -> None:
    """A path with a glob character names only itself."""
    (origin.work / "streams" / "shop" / "app.yaml").write_text("changed\n")
    assert repo.is_clean(["streams/shop/*.yaml"]) and not repo.is_clean(["streams/shop"])


def test_is_clean_ignores_other_paths(origin: ConfigRepo, repo: GitRepo) -> None:
    """A change outside the given paths leaves them clean."""
    (origin.work / "README").write_text("edited\n")
    assert repo.is_clean(["streams", "locks"]) and not repo.is_clean()


def test_read_at_revisions(origin: ConfigRepo, repo: GitRepo) -> None:
    """Files read back at HEAD and at an older commit; a missing file is None."""
    first = repo.head()
    origin.commit({"README": "two\n"}, "edit", push=False)
    assert repo.read("README") == b"two\n"
    assert repo.read("README", first) == b"hi\n"
    assert repo.read("missing.yaml") is None


def test_read_unknown_revision(repo: GitRepo) -> None:
    """An unknown revision is an error, not an absent file."""
    with pytest.raises(GitError, match="unknown revision"):
        repo.read("README", "no-such-branch")


# --- commits -----------------------------------------------------------------------------------


def test_commit_writes_and_deletes_exactly_the_files(origin: ConfigRepo, repo: GitRepo) -> None:
    """A commit adds, changes and deletes exactly the given paths, and the tree matches it."""
    (origin.work / "untracked.txt").write_text("keep out\n")
    sha = repo.commit(
        {LOCK: b"new\n", "README": None, "streams/shop/app.yaml": b"kind: X\n"}, "m\n", BOT
    )
    assert changed_paths(origin, sha) == [
        f"A\t{LOCK}",
        "D\tREADME",
        "M\tstreams/shop/app.yaml",
    ]
    assert (origin.work / LOCK).read_bytes() == b"new\n"
    assert not (origin.work / "README").exists()
    assert repo.is_clean(["locks", "streams", "README"])


def test_commit_identity_and_message(origin: ConfigRepo, repo: GitRepo) -> None:
    """Author and committer are the configured bot; the message is kept byte for byte."""
    message = format_message(
        "shop/app: prod", "body", [TrailerBlock("shop/app:prod", SOURCE, None, digest(1))]
    )
    sha = repo.commit({LOCK: b"x\n"}, message, BOT)
    shown = origin.git("show", "-s", "--format=%an <%ae>%x00%cn <%ce>%x00%B", sha)
    assert shown == f"{BOT}\x00{BOT}\x00{message}\n"


def test_commit_leaves_other_staged_work_alone(origin: ConfigRepo, repo: GitRepo) -> None:
    """Someone's staged change is neither committed nor unstaged."""
    (origin.work / "README").write_text("staged\n")
    origin.git("add", "README")
    sha = repo.commit({LOCK: b"x\n"}, "m", BOT)
    assert changed_paths(origin, sha) == [f"A\t{LOCK}"]
    assert origin.git("diff", "--cached", "--name-only").split() == ["README"]


def test_commit_on_an_unborn_branch(tmp_path: Path) -> None:
    """The first commit of a repository has no parent."""
    git(tmp_path, "init", "--quiet", "repo")
    repo = GitRepo.open(tmp_path / "repo")
    sha = repo.commit({"a.txt": b"a\n"}, "first", BOT)
    assert git(tmp_path / "repo", "rev-list", "--parents", "-n1", sha).split() == [sha]


def test_commit_without_changes_is_refused(repo: GitRepo) -> None:
    """Writing the bytes a file already holds makes no empty commit."""
    head = repo.head()
    with pytest.raises(GitError, match="nothing to commit"):
        repo.commit({"README": b"hi\n"}, "m", BOT)
    assert repo.head() == head


@pytest.mark.parametrize(
    "path",
    [
        "../outside",
        "/etc/passwd",
        "locks/../../x",
        ".git/config",
        "sub/.Git/config",
        "./README",
        "a//b",
        "a\nb",
        "",
    ],
)
def test_commit_refuses_paths_outside_the_repo(repo: GitRepo, path: str) -> None:
    """Paths that escape the working tree or reach into .git are refused before any write."""
    head = repo.head()
    with pytest.raises(InputError, match="refusing path"):
        repo.commit({path: b"x"}, "m", BOT)
    assert repo.head() == head


def test_commit_refuses_writing_through_a_symlink(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """A symlinked directory in the working tree is not followed out of the repo."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (origin.work / "locks").symlink_to(outside)
    with pytest.raises(InputError, match="symlink"):
        repo.commit({LOCK: b"x"}, "m", BOT)
    assert list(outside.iterdir()) == []


def test_commit_refuses_a_file_in_place_of_a_directory(repo: GitRepo) -> None:
    """Writing below a tracked file would silently replace it; it is refused."""
    with pytest.raises(InputError, match="README is a file"):
        repo.commit({"README/x": b"x"}, "m", BOT)


def test_commit_refuses_an_invalid_author(repo: GitRepo) -> None:
    """The author must read ``Name <email>``."""
    with pytest.raises(InputError, match="invalid git author"):
        repo.commit({LOCK: b"x"}, "m", "streamlock")


def test_create_commit_leaves_head_and_tree_alone(origin: ConfigRepo, repo: GitRepo) -> None:
    """A review-branch commit is built on a parent without moving HEAD or writing files."""
    head = repo.head()
    sha = repo.create_commit({LOCK: b"x\n"}, "m", BOT, head)
    assert repo.head() == head and not (origin.work / LOCK).exists()
    assert repo.read(LOCK, sha) == b"x\n"


def test_a_chain_moves_the_branch_once(origin: ConfigRepo, repo: GitRepo) -> None:
    """A chain of commits lands with one move of the branch, each commit on the one before."""
    head = repo.head()
    reflog = origin.git("reflog", "--format=%H", "HEAD").split()
    shas = repo.commit_chain(
        [({LOCK: b"a\n"}, "first"), ({"locks/shop/web.lock.yaml": b"w\n"}, "second")], BOT
    )
    assert origin.git("rev-list", "--parents", "-n1", shas[1]).split() == [shas[1], shas[0]]
    assert origin.git("rev-list", "--parents", "-n1", shas[0]).split() == [shas[0], head]
    assert origin.git("reflog", "--format=%H", "HEAD").split() == [shas[1], *reflog]
    assert changed_paths(origin, shas[0]) == [f"A\t{LOCK}"]
    assert repo.is_clean()


def test_a_path_fast_import_must_quote_keeps_its_name(origin: ConfigRepo, repo: GitRepo) -> None:
    """Leading quotes, spaces and non-ASCII letters in a path reach the tree as written."""
    path = '"we ird" näme.yaml'
    repo.commit({path: b"x\n"}, "add", BOT)
    sha = repo.commit({path: None, "README": b"changed\n"}, "delete", BOT)
    assert origin.git("ls-tree", "-r", "--name-only", "-z", f"{sha}~1").split("\0")[0] == path
    assert repo.read(path, sha) is None
    assert repo.is_clean()


def test_commit_keeps_an_executable_file_executable(origin: ConfigRepo, repo: GitRepo) -> None:
    """A file that is executable in the tree stays executable when the reconciler rewrites it."""
    origin.commit({"deploy/run.sh": "#!/bin/sh\n"}, "script")
    origin.git("update-index", "--chmod=+x", "deploy/run.sh")
    origin.git("commit", "--quiet", "-m", "executable")
    sha = repo.commit({"deploy/run.sh": b"#!/bin/sh\necho\n"}, "m", BOT)
    assert origin.git("ls-tree", sha, "deploy/run.sh").split()[0] == "100755"


def test_commit_dates_follow_git_date_variables(
    origin: ConfigRepo, repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIT_AUTHOR_DATE and GIT_COMMITTER_DATE set the dates, as for git commit-tree."""
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2001-02-03T04:05:06+0100")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "@1000000000 +0000")
    sha = repo.commit({LOCK: b"x\n"}, "m", BOT)
    shown = origin.git("show", "-s", "--format=%ad|%cd", "--date=raw", sha).strip()
    assert shown == "981169506 +0100|1000000000 +0000"


@pytest.mark.parametrize(
    ("files", "refusal"),
    [
        ({"link": b"x"}, "refusing to write link: it is not a regular file"),
        ({"link/x": b"x"}, "refusing to write below link: it is not a directory"),
        ({"README/x": b"x"}, "refusing to write below README: it is not a directory"),
        ({"streams": b"x"}, "refusing to write streams: it is not a regular file"),
        ({"a/b": b"x", "a/b/c": b"y"}, "refusing to write a/b: it is also a directory"),
        ({"streams": None}, "refusing to delete streams: it is a directory"),
    ],
)
def test_a_commit_that_would_turn_the_tree_around_is_refused(
    origin: ConfigRepo, repo: GitRepo, files: dict[str, bytes], refusal: str
) -> None:
    """Writing over a symlink or a directory, below a file, or deleting a directory is refused."""
    (origin.work / "link").symlink_to("README")
    origin.git("add", "link")
    origin.git("commit", "--quiet", "-m", "a symlink")
    with pytest.raises(InputError, match=refusal):
        repo.create_commit(files, "m", BOT, repo.head())


def test_a_chain_with_a_commit_that_changes_nothing_is_refused(repo: GitRepo) -> None:
    """A commit in a chain that writes what its parent holds is refused; nothing is built."""
    head = repo.head()
    with pytest.raises(GitError, match="nothing to commit"):
        repo.commit_chain([({LOCK: b"a\n"}, "one"), ({LOCK: b"a\n"}, "two")], BOT)
    assert repo.head() == head


# --- remotes -----------------------------------------------------------------------------------


def test_push_reaches_the_remote(origin: ConfigRepo, repo: GitRepo) -> None:
    """A pushed commit is the remote's main and nothing is left unpushed."""
    sha = repo.commit({LOCK: b"x\n"}, "m", BOT)
    assert origin.remote_head() != sha
    assert repo.push("origin", BRANCH) is True
    assert origin.remote_head() == sha


def test_push_after_a_concurrent_push_is_rejected(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """When another clone pushed first, push returns False and the remote keeps their commit."""
    other = ConfigRepo(origin.clone(tmp_path / "other"), origin.remote)
    theirs = other.commit({"README": "theirs\n"}, "theirs")
    repo.commit({LOCK: b"x\n"}, "m", BOT)
    assert repo.push("origin", BRANCH) is False
    assert origin.remote_head() == theirs


def test_fetch_and_reset_move_to_the_remote_tip(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """After a rejection the caller fetches and resets its own clone to the new tip."""
    other = ConfigRepo(origin.clone(tmp_path / "other"), origin.remote)
    theirs = other.commit({"README": "theirs\n"}, "theirs")
    assert repo.fetch("origin", BRANCH) == theirs
    repo.reset_hard(f"origin/{BRANCH}")
    assert (repo.head(), repo.read("README")) == (theirs, b"theirs\n")
    assert (origin.work / "README").read_text() == "theirs\n" and repo.is_clean()


def test_reset_keep_preserves_unrelated_edits(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """Moving to the remote tip with reset_keep keeps a person's edit of another file."""
    other = ConfigRepo(origin.clone(tmp_path / "other"), origin.remote)
    theirs = other.commit({"streams/shop/app.yaml": "theirs\n"}, "theirs")
    (origin.work / "README").write_text("mine\n")
    repo.fetch("origin", BRANCH)
    repo.reset_keep(f"origin/{BRANCH}")
    assert (repo.head(), (origin.work / "README").read_text()) == (theirs, "mine\n")


def test_reset_keep_refuses_to_lose_edits(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """reset_keep fails rather than overwrite a local edit of a file the new tip changes."""
    other = ConfigRepo(origin.clone(tmp_path / "other"), origin.remote)
    other.commit({"README": "theirs\n"}, "theirs")
    (origin.work / "README").write_text("mine\n")
    head = repo.head()
    repo.fetch("origin", BRANCH)
    with pytest.raises(GitError, match="reset failed"):
        repo.reset_keep(f"origin/{BRANCH}")
    assert (repo.head(), (origin.work / "README").read_text()) == (head, "mine\n")


def test_push_refuses_a_forced_refspec(repo: GitRepo) -> None:
    """The watched branch is never force-pushed."""
    with pytest.raises(InputError, match="force"):
        repo.push("origin", BRANCH, f"+HEAD:refs/heads/{BRANCH}")


def test_push_failure_hides_credentials(repo: GitRepo) -> None:
    """A push that cannot reach the remote raises GitError without the URL's password."""
    url = "http://bot:s3cret-token@127.0.0.1:9/shop.git"
    with pytest.raises(GitError) as caught:
        repo.push(url, BRANCH)
    assert "s3cret-token" not in str(caught.value)


def test_push_runs_under_the_network_timeout(
    origin: ConfigRepo, repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push is bounded by STREAMLOCK_GIT_TIMEOUT, not by the longer limit of local commands."""
    hook = origin.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nsleep 5\n")
    hook.chmod(0o755)
    monkeypatch.setenv("STREAMLOCK_GIT_TIMEOUT", "1")
    repo.commit({LOCK: b"x\n"}, "m", BOT)
    with pytest.raises(GitError, match="did not finish within 1s"):
        repo.push("origin", BRANCH)


def test_fetch_runs_under_the_network_timeout(
    origin: ConfigRepo, repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch is bounded by STREAMLOCK_GIT_TIMEOUT, not by the longer limit of local commands."""
    origin.git("config", "remote.origin.uploadpack", "sleep 5; git-upload-pack")
    monkeypatch.setenv("STREAMLOCK_GIT_TIMEOUT", "1")
    with pytest.raises(GitError, match="did not finish within 1s"):
        repo.fetch("origin", BRANCH)


def test_review_branch_is_created_and_updated_with_a_lease(
    origin: ConfigRepo, repo: GitRepo
) -> None:
    """A review branch is created, then rewritten only while the lease holds."""
    branch = review_branch("shop", "app")
    base = repo.head()
    first = repo.create_commit({LOCK: b"1\n"}, "m", BOT, base)
    second = repo.create_commit({LOCK: b"2\n"}, "m", BOT, base)
    assert repo.push_branch("origin", first, branch, None) is True
    assert repo.push_branch("origin", second, branch, None) is False
    assert repo.remote_sha("origin", branch) == first
    assert repo.push_branch("origin", second, branch, first) is True
    assert git(origin.remote, "rev-parse", f"refs/heads/{branch}").strip() == second
    assert origin.remote_head() == base


def test_push_branch_refuses_the_watched_branch(repo: GitRepo) -> None:
    """Only streamlock/ review branches may be rewritten."""
    with pytest.raises(InputError, match="refusing to rewrite"):
        repo.push_branch("origin", repo.head() or "", BRANCH, repo.head())


def test_clone_and_reuse(origin: ConfigRepo, tmp_path: Path) -> None:
    """The daemon clones once and reuses the clone afterwards."""
    dest = tmp_path / "daemon"
    first = GitRepo.clone(str(origin.remote), dest, BRANCH)
    marker = dest / ".git" / "streamlock-marker"
    marker.write_text("x")
    again = GitRepo.clone(str(origin.remote), dest, BRANCH)
    assert (first.root, again.root, again.head()) == (dest.resolve(),) * 2 + (origin.remote_head(),)
    assert marker.exists()


def test_clone_refuses_a_clone_of_another_repository(origin: ConfigRepo, tmp_path: Path) -> None:
    """A directory holding another repository's clone is not silently reused."""
    dest = tmp_path / "daemon"
    GitRepo.clone(str(origin.remote), dest, BRANCH)
    with pytest.raises(GitError, match="another repository"):
        GitRepo.clone(str(tmp_path / "elsewhere.git"), dest, BRANCH)


# --- trailers and the index --------------------------------------------------------------------


def test_git_interpret_trailers_agrees(origin: ConfigRepo) -> None:
    """``git interpret-trailers --parse`` reads the same trailers format_message writes."""
    blocks = [
        TrailerBlock("shop/app:prod", SOURCE, digest(1), digest(2)),
        TrailerBlock("shop/app:test", "ImageStreamTag:shop/app:latest", None, digest(3)),
    ]
    message = format_message("shop/app: prod", "from: x\n---\nnot a patch", blocks)
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=message,
        capture_output=True,
        text=True,
        check=True,
        cwd=origin.work,
    ).stdout
    assert parsed.splitlines() == [line for block in blocks for line in block.lines()]


def test_index_newest_commit_wins(repo: GitRepo) -> None:
    """The base of a tag and source is the image of the newest reconciler commit for them."""
    bump(repo, "prod", digest(1), None)
    bump(repo, "test", digest(5), None)
    last = bump(repo, "prod", digest(2), digest(1))
    index = TrailerIndex(repo)
    assert index.bases() == {
        ("shop/app:prod", SOURCE): digest(2),
        ("shop/app:test", SOURCE): digest(5),
    }
    assert index.last_commits()["shop/app:prod"] == (last, digest(2))


def test_index_keeps_the_base_across_a_revert(origin: ConfigRepo, repo: GitRepo) -> None:
    """A ``git revert`` of a bump carries no trailers, so the reverted bump stays the base."""
    bump(repo, "prod", digest(1), None)
    bumped = bump(repo, "prod", digest(2), digest(1))
    origin.git("revert", "--no-edit", bumped)
    assert (origin.work / LOCK).read_text() == f"prod: {digest(1)}\n"
    assert TrailerIndex(repo).bases() == {("shop/app:prod", SOURCE): digest(2)}


def test_index_update_reads_only_new_commits(origin: ConfigRepo, repo: GitRepo) -> None:
    """With a cache at an ancestor, a fresh index reads only the commits after it."""
    bump(repo, "prod", digest(1), None)
    bump(repo, "test", digest(5), None)
    TrailerIndex(repo).refresh()
    origin.commit({"README": "human\n"}, "a human edit", push=False)
    bump(repo, "prod", digest(2), digest(1))
    index = TrailerIndex(repo)
    assert index.bases()[("shop/app:prod", SOURCE)] == digest(2)
    assert index.last_scan is not None
    assert (index.last_scan.full, index.last_scan.commits) == (False, 1)
    assert json.loads(index.path.read_text())["head"] == repo.head()


def test_index_cache_lives_in_the_git_dir(origin: ConfigRepo, repo: GitRepo) -> None:
    """The cache is written under .git/streamlock and never into the working tree."""
    bump(repo, "prod", digest(1), None)
    index = TrailerIndex(repo)
    index.refresh()
    assert index.path == origin.work.resolve() / ".git" / "streamlock" / "trailer-index.json"
    assert index.path.exists() and repo.is_clean()


def test_index_rescans_rewritten_history(origin: ConfigRepo, repo: GitRepo) -> None:
    """When the cached head is no longer an ancestor, everything is read again."""
    first = bump(repo, "prod", digest(1), None)
    bump(repo, "prod", digest(2), digest(1))
    TrailerIndex(repo).refresh()
    repo.reset_hard(first)
    bump(repo, "prod", digest(3), digest(1))
    index = TrailerIndex(repo)
    assert index.bases() == {("shop/app:prod", SOURCE): digest(3)}
    assert index.last_scan is not None
    assert (index.last_scan.full, index.last_scan.commits) == (True, 2)


def test_index_rebuilds_a_corrupt_cache(repo: GitRepo) -> None:
    """An unreadable cache is ignored and replaced."""
    bump(repo, "prod", digest(1), None)
    index = TrailerIndex(repo)
    index.path.parent.mkdir(parents=True, exist_ok=True)
    index.path.write_text('{"version": 1, "head": "x", "bases": [1]}')
    assert index.bases() == {("shop/app:prod", SOURCE): digest(1)}
    assert index.last_scan is not None and index.last_scan.full
    assert json.loads(index.path.read_text())["head"] == repo.head()


def test_index_keys_by_source(repo: GitRepo) -> None:
    """A changed ``from`` starts a new base and keeps the old source's base apart."""
    bump(repo, "prod", digest(1), None)
    bump(repo, "prod", digest(2), digest(1), source="registry.example.com/shop/app:1.5")
    assert TrailerIndex(repo).bases() == {
        ("shop/app:prod", SOURCE): digest(1),
        ("shop/app:prod", "registry.example.com/shop/app:1.5"): digest(2),
    }


def _fast_import(work: Path, count: int) -> None:
    """``count`` commits on main in one fast-import; every tenth is a reconciler bump of prod."""
    chunks = []
    for n in range(1, count + 1):
        if n % 10 == 0:
            block = TrailerBlock(
                "shop/app:prod", SOURCE, digest(n - 10) if n > 10 else None, digest(n)
            )
            message = format_message(f"shop/app: prod {n}", "", [block])
        else:
            message = f"human edit {n}\n"
        data = message.encode()
        content = f"{n}\n".encode()
        chunks.append(
            b"commit refs/heads/main\n"
            + f"committer Bot <bot@x> {1_700_000_000 + n} +0000\n".encode()
            + f"data {len(data)}\n".encode()
            + data
            + f"M 100644 inline file.txt\ndata {len(content)}\n".encode()
            + content
            + b"\n"
        )
    subprocess.run(
        ["git", "fast-import", "--quiet", "--force"],
        input=b"".join(chunks),
        cwd=work,
        check=True,
        capture_output=True,
    )


def test_index_over_thousands_of_commits(tmp_path: Path) -> None:
    """A 2,500-commit history is read in one scan and the newest of 250 bumps is the base."""
    git(tmp_path, "init", "--quiet", "big")
    work = tmp_path / "big"
    _fast_import(work, 2500)
    git(work, "reset", "--quiet", "--hard", "main")
    index = TrailerIndex(GitRepo.open(work))
    assert index.bases() == {("shop/app:prod", SOURCE): digest(2500)}
    assert index.last_scan is not None
    assert (index.last_scan.full, index.last_scan.commits) == (True, 250)


def test_blobs_written_together_keep_bytes_and_attributes(
    origin: ConfigRepo, repo: GitRepo
) -> None:
    """Blobs written together keep their bytes, and a path with a text attribute is still
    converted the way a person's commit converts it (CRLF stored as LF)."""
    origin.commit({".gitattributes": "*.crlf text eol=crlf\n"}, "attributes")
    files = {"locks/a.yaml": b"a: 1\n", "locks/b.yaml": b"b: 2\n", "deploy/x.crlf": b"x\r\ny\r\n"}
    repo.learn_attributes(files)
    sha = repo.commit(files, "m", BOT)
    assert repo.read("locks/a.yaml", sha) == b"a: 1\n"
    assert repo.read("locks/b.yaml", sha) == b"b: 2\n"
    assert repo.read("deploy/x.crlf", sha) == b"x\ny\n"
    person = origin.commit({"deploy/y.crlf": "x\r\ny\r\n"}, "a person's file")
    assert origin.git("cat-file", "blob", f"{person}:deploy/y.crlf") == "x\ny\n"


def test_commits_in_a_chain_and_off_it_hold_exactly_their_parents_files(
    origin: ConfigRepo, repo: GitRepo
) -> None:
    """A commit on the last one builds on its tree; one on another parent starts from that
    parent's tree, never from what the previous commit left."""
    base = repo.head()
    first = repo.create_commit({"locks/a.yaml": b"a\n"}, "a", BOT, base)
    second = repo.create_commit({"locks/b.yaml": b"b\n"}, "b", BOT, first)
    aside = repo.create_commit({"locks/c.yaml": b"c\n"}, "c", BOT, base)
    files = {
        rev: set(origin.git("ls-tree", "-r", "--name-only", rev).split()) for rev in (second, aside)
    }
    assert {"locks/a.yaml", "locks/b.yaml"} <= files[second]
    assert "locks/a.yaml" not in files[aside] and "locks/c.yaml" in files[aside]


def test_streamed_messages_are_whole_however_git_output_is_cut(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages read in 7-byte pieces are the messages read at once, newest first."""
    shas = [bump(repo, "prod", digest(n), digest(n - 1) if n else None) for n in range(3)]
    whole = repo.signed_messages("HEAD", grep="Streamlock-Tag:")
    original = gitrepo._stream
    monkeypatch.setattr(gitrepo, "_stream", lambda args, cwd: original(args, cwd=cwd, size=7))
    cut = repo.signed_messages("HEAD", grep="Streamlock-Tag:")
    assert cut == whole and [m.sha for m in cut] == shas[::-1]
    assert all("Streamlock-Image: " + digest(n) in cut[2 - n].message for n in range(3))


def test_a_failing_streamed_log_is_a_git_error(repo: GitRepo) -> None:
    """git's refusal of a revision reaches the caller as a GitError, not as no history."""
    with pytest.raises(GitError, match="git log failed"):
        repo.signed_messages("no-such-revision")


def test_a_full_scan_reads_history_without_holding_a_list(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's first scan consumes the log as a stream, and counts what it read."""
    for n in range(3):
        bump(repo, "prod", digest(n), digest(n - 1) if n else None)
    monkeypatch.setattr(GitRepo, "signed_messages", lambda *a, **k: pytest.fail("held a list"))
    index = TrailerIndex(repo, BOT)
    assert index.last_commits()["shop/app:prod"][1] == digest(2)
    assert index.last_scan is not None and index.last_scan.commits == 3 and index.last_scan.full
