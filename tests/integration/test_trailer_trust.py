"""Trailers are trusted only from the reconciler: by author, and by signature when signing.

A person can type ``Streamlock-*`` lines into any commit message; the trailer index ("B" of the
revert rule) must not take them for the reconciler's record. Signing uses real ``ssh-keygen``
keys and git's own ``gpg.format ssh`` verification.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.gitrepo import GitRepo, TrailerIndex
from reconciler.trailers import TrailerBlock, format_message
from tests.fixtures.gitremote import IDENTITY, ConfigRepo, git

BOT = "streamlock <bot@streamlock.invalid>"
LOCK = "locks/shop/app.lock.yaml"
SOURCE = "registry.example.com/shop/app:1.4"
TAG = "shop/app:prod"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def message(image: str, previous: str | None) -> str:
    block = TrailerBlock(TAG, SOURCE, previous, image)
    return format_message("shop/app: prod", "from: x", [block])


@pytest.fixture
def origin(config_repo: Callable[..., ConfigRepo]) -> ConfigRepo:
    return config_repo({"streams/shop/app.yaml": "kind: ImageStream\n"})


@pytest.fixture
def repo(origin: ConfigRepo) -> GitRepo:
    return GitRepo.open(origin.work)


def hand_commit(origin: ConfigRepo, text: str, *, author: str | None = None) -> str:
    """A commit written by hand with ``git commit`` (optionally claiming another author)."""
    lock = origin.work / LOCK
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(f"edited {len(text)} {lock.exists()}\n")
    git(origin.work, "add", LOCK)
    args = ["commit", "--quiet", "--no-gpg-sign", "-m", text]
    env_args: list[str] = []
    if author is not None:
        name, email = author[:-1].split(" <")
        env_args = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
    git(origin.work, *env_args, *args)
    return git(origin.work, "rev-parse", "HEAD").strip()


def keypair(directory: Path, name: str) -> Path:
    """A fresh ed25519 key made by ``ssh-keygen``; returns the private key's path."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return key


def configure_signing(origin: ConfigRepo, key: Path, allowed: list[Path]) -> None:
    """git's own SSH signing: the reconciler's key, and the signers git accepts."""
    signers = key.parent / "allowed_signers"
    email = BOT.split("<")[1].rstrip(">")
    signers.write_text(
        "".join(f"{email} {Path(f'{k}.pub').read_text().strip()}\n" for k in allowed)
    )
    git(origin.work, "config", "gpg.format", "ssh")
    git(origin.work, "config", "user.signingkey", str(key))
    git(origin.work, "config", "gpg.ssh.allowedSignersFile", str(signers))


def test_hand_written_trailers_by_another_author_are_ignored(
    origin: ConfigRepo, repo: GitRepo
) -> None:
    """A person's commit with the exact trailer shape does not change the reconciler's base."""
    repo.commit({LOCK: b"prod: 1\n"}, message(digest(1), None), BOT)
    hand_commit(origin, message(digest(9), digest(1)))
    assert TrailerIndex(repo, BOT).bases() == {(TAG, SOURCE): digest(1)}


def test_a_forged_commit_alone_yields_no_base(origin: ConfigRepo, repo: GitRepo) -> None:
    """Forged trailers in a history without reconciler commits give no base at all."""
    hand_commit(origin, message(digest(9), None))
    assert TrailerIndex(repo, BOT).bases() == {}


def test_unsigned_commit_under_the_bot_name_is_ignored_when_signing(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """With signing configured, a commit claiming the bot identity but unsigned is ignored."""
    configure_signing(origin, keypair(tmp_path / "keys", "bot"), [tmp_path / "keys" / "bot"])
    repo.commit({LOCK: b"prod: 1\n"}, message(digest(1), None), BOT)
    hand_commit(origin, message(digest(9), digest(1)), author=BOT)
    assert TrailerIndex(repo, BOT).bases() == {(TAG, SOURCE): digest(1)}


def test_commit_signed_by_a_key_not_allowed_is_ignored(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """A commit under the bot identity signed by a key the allowed signers lack is ignored."""
    keys = tmp_path / "keys"
    bot, intruder = keypair(keys, "bot"), keypair(keys, "intruder")
    configure_signing(origin, bot, [bot])
    repo.commit({LOCK: b"prod: 1\n"}, message(digest(1), None), BOT)
    git(origin.work, "config", "user.signingkey", str(intruder))
    GitRepo.open(origin.work).commit({LOCK: b"prod: 9\n"}, message(digest(9), digest(1)), BOT)
    git(origin.work, "config", "user.signingkey", str(bot))
    assert TrailerIndex(repo, BOT).bases() == {(TAG, SOURCE): digest(1)}


def test_reconciler_commits_are_signed_and_verify(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """With signing configured the reconciler signs, git verifies it, and the index counts it."""
    key = keypair(tmp_path / "keys", "bot")
    configure_signing(origin, key, [key])
    sha = repo.commit({LOCK: b"prod: 1\n"}, message(digest(1), None), BOT)
    assert git(origin.work, "log", "-1", "--format=%G?", sha).strip() == "G"
    assert TrailerIndex(repo, BOT).bases() == {(TAG, SOURCE): digest(1)}


def test_a_signed_chain_holds_each_commits_files_and_every_signature_verifies(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """Signing builds a pass's commits one by one, each on the last, each signed and verified."""
    key = keypair(tmp_path / "keys", "bot")
    configure_signing(origin, key, [key])
    head = repo.head()
    shas = repo.commit_chain(
        [
            ({LOCK: b"prod: 1\n"}, message(digest(1), None)),
            ({"locks/shop/web.lock.yaml": b"web: 1\n"}, "web"),
        ],
        BOT,
    )
    assert git(origin.work, "log", "--format=%G?", f"{head}..HEAD").split() == ["G", "G"]
    assert git(origin.work, "rev-parse", f"{shas[1]}^", f"{shas[0]}^").split() == [shas[0], head]
    assert repo.read(LOCK, shas[1]) == b"prod: 1\n"
    assert repo.read("locks/shop/web.lock.yaml", shas[0]) is None


def test_signed_chains_on_one_parent_hold_only_their_own_files(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """Review branches built while signing each start from the parent, not the last chain."""
    key = keypair(tmp_path / "keys", "bot")
    configure_signing(origin, key, [key])
    first, second = repo.create_chains(
        [[({LOCK: b"prod: 1\n"}, "app")], [({"locks/shop/web.lock.yaml": b"w\n"}, "web")]],
        BOT,
        repo.head(),
    )
    assert repo.read(LOCK, second[0]) is None and repo.read(LOCK, first[0]) == b"prod: 1\n"


def test_cached_summary_is_recomputed_when_signing_is_turned_on(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """A summary cached before signing was configured is not reused once it is."""
    repo.commit({LOCK: b"prod: 1\n"}, message(digest(1), None), BOT)
    assert TrailerIndex(repo, BOT).bases() == {(TAG, SOURCE): digest(1)}
    key = keypair(tmp_path / "keys", "bot")
    configure_signing(origin, key, [key])
    assert TrailerIndex(GitRepo.open(origin.work), BOT).bases() == {}


def test_verifying_without_a_key_still_requires_signatures(
    origin: ConfigRepo, repo: GitRepo, tmp_path: Path
) -> None:
    """Where git only verifies (allowed signers, no key), an unsigned bot commit is ignored."""
    key = keypair(tmp_path / "keys", "bot")
    configure_signing(origin, key, [key])
    signed = repo.commit({LOCK: b"prod: 1\n"}, message(digest(1), None), BOT)
    git(origin.work, "config", "--unset", "user.signingkey")
    hand_commit(origin, message(digest(9), digest(1)), author=BOT)
    checker = GitRepo.open(origin.work)
    assert not checker.signing_configured()
    assert TrailerIndex(checker, BOT).bases() == {(TAG, SOURCE): digest(1)}
    assert TrailerIndex(checker, BOT).last_commits()[TAG] == (signed, digest(1))


def test_bot_commit_recommitted_by_a_forge_still_counts(origin: ConfigRepo, repo: GitRepo) -> None:
    """A bot commit re-committed by someone else (a rebase merge) keeps its author and counts."""
    sha = repo.commit({LOCK: b"prod: 1\n"}, message(digest(1), None), BOT)
    git(origin.work, "reset", "--quiet", "--hard", "HEAD~1")
    git(origin.work, "cherry-pick", sha)
    assert git(origin.work, "log", "-1", "--format=%an|%cn").strip() == f"streamlock|{IDENTITY[0]}"
    assert TrailerIndex(GitRepo.open(origin.work), BOT).bases() == {(TAG, SOURCE): digest(1)}
