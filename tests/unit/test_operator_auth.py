"""The operator's credential sources: which entries count, and the operator's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.config import Config, RegistryAuth, RegistryConfig
from reconciler.credentials import (
    AuthEntry,
    CredentialStore,
    choose_entries,
    load_operator_auth,
    parse_operator_auth,
)
from reconciler.errors import ValidationError

REPO_AUTH = RegistryAuth(username_env="CI_USER", password_env="CI_TOKEN")
OPERATOR_AUTH = RegistryAuth(helper="operator")


def _repo(*hosts: str) -> Config:
    return Config(registries=tuple(RegistryConfig(host=h, auth=REPO_AUTH) for h in hosts))


def test_repo_auth_is_ignored_unless_trusted() -> None:
    """Untrusted, the repository's entries are left out and named as ignored."""
    chosen, ignored = choose_entries(
        _repo("evil.example"), (), repo_dir=Path("/repo"), trust_repo=False
    )
    assert (chosen, ignored) == ((), ("evil.example",))


def test_trusted_repo_auth_counts() -> None:
    """Trusted, the repository's entries count, relative to the repository."""
    chosen, ignored = choose_entries(_repo("quay.io"), (), repo_dir=Path("/repo"), trust_repo=True)
    assert (chosen, ignored) == ((AuthEntry("quay.io", REPO_AUTH, Path("/repo")),), ())


def test_operator_entry_beats_a_trusted_repo_entry() -> None:
    """For one host, the operator's entry wins over the repository's, trusted or not."""
    operator = (AuthEntry("docker.io", OPERATOR_AUTH, Path("/etc")),)
    chosen, ignored = choose_entries(
        _repo("index.docker.io"), operator, repo_dir=Path("/repo"), trust_repo=True
    )
    assert (chosen, ignored) == (operator, ())


def test_operator_file_holds_only_hosts_and_auth() -> None:
    """Anything but registries[].host and auth in the operator's file is a located error."""
    text = b"registries:\n- host: quay.io\n  auth: {helper: x}\n  insecure: true\nplatform: x/y\n"
    with pytest.raises(ValidationError) as caught:
        parse_operator_auth(text, "auth.yaml", None)
    assert [str(p) for p in caught.value.problems] == [
        "auth.yaml:4:3: registries[0].insecure: an auth config entry holds only host and auth",
        "auth.yaml:5:1: platform: an auth config holds only registries",
    ]


async def test_operator_paths_are_relative_to_its_file(tmp_path: Path) -> None:
    """An authFile in the operator's file is read next to that file, not in the repository."""
    operator_dir = tmp_path / "operator"
    operator_dir.mkdir()
    (operator_dir / "auth.json").write_text(
        json.dumps({"auths": {"quay.io": {"username": "op", "password": "secret"}}})
    )
    path = operator_dir / "auth.yaml"
    path.write_text("registries:\n- host: quay.io\n  auth: {authFile: auth.json}\n")
    entries = load_operator_auth(path)
    store = CredentialStore(Config(), env={}, base_dir=tmp_path / "repo", entries=entries)
    credential = await store.get("quay.io", "ns/app")
    assert credential is not None and credential.username == "op"
