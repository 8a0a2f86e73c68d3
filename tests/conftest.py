"""Shared fixtures: real registries on 127.0.0.1 (plain, htpasswd, token, TLS), seeders, a fault
proxy, bare Git remotes, and a git environment that never reads the machine's configuration.

Servers are session-scoped and start only when a test asks for them; tests share them safely by
using ``repo_name`` (unique per test) for every repository they push.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.gitremote import IDENTITY, ConfigRepo, make_config_repo
from tests.fixtures.images import Seeder
from tests.fixtures.registry_server import RegistryServer
from tests.fixtures.token_server import TokenServer

HTPASSWD_USERS = {"alice": "alice-secret-1"}
if TYPE_CHECKING:
    from tests.fixtures.fault_proxy import FaultProxy

TOKEN_USERS = {"bob": "bob-secret-2"}


@pytest.fixture(scope="session", autouse=True)
def git_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """HOME, global git config and identity of our own; the system config is never read."""
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n"
        f"\tname = {IDENTITY[0]}\n"
        f"\temail = {IDENTITY[1]}\n"
        "[init]\n\tdefaultBranch = main\n"
        "[commit]\n\tgpgsign = false\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
        patch.setenv("GIT_TERMINAL_PROMPT", "0")
        for name in (
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
            "GIT_AUTHOR_DATE",
            "GIT_COMMITTER_DATE",
        ):
            patch.delenv(name, raising=False)
        yield home


# --- registries (session-scoped, started lazily) ----------------------------------------------
@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An open registry over plain HTTP."""
    with RegistryServer(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def registry_htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry with basic auth; ``.username``/``.password``/``.auth`` hold the credentials."""
    root = tmp_path_factory.mktemp("registry-htpasswd")
    with RegistryServer(root, htpasswd=HTPASSWD_USERS) as server:
        yield server


@pytest.fixture(scope="session")
def _token_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    with TokenServer(tmp_path_factory.mktemp("token"), TOKEN_USERS) as server:
        yield server


@pytest.fixture(scope="session")
def registry_token(
    tmp_path_factory: pytest.TempPathFactory, _token_server_session: TokenServer
) -> Iterator[RegistryServer]:
    """A registry with token auth; ``.token_server`` issues tokens, ``.auth`` the credentials."""
    root = tmp_path_factory.mktemp("registry-token")
    with RegistryServer(root, token_server=_token_server_session) as server:
        yield server


@pytest.fixture
def token_server(registry_token: RegistryServer) -> Iterator[TokenServer]:
    """The token registry's token server with counters and knobs reset around the test."""
    server = registry_token.token_server
    assert server is not None
    server.reset()
    server.anonymous_pull = False
    yield server
    server.reset()
    server.anonymous_pull = False


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An open registry over TLS; clients need ``.ca_file`` (or ``.verify``)."""
    with RegistryServer(tmp_path_factory.mktemp("registry-tls"), tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def registry_mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A TLS registry that requires a client certificate (``.client_cert``)."""
    root = tmp_path_factory.mktemp("registry-mtls")
    with RegistryServer(root, tls=True, client_certs=True) as server:
        yield server


# --- per-test helpers ---------------------------------------------------------------------------
@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository path unique to this test, valid in distribution's grammar."""
    return unique_repo_name(request.node.nodeid)


def unique_repo_name(nodeid: str, prefix: str = "t") -> str:
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", nodeid.rsplit("::", 1)[-1].lower()).strip("-")[:40]
    slug = slug.strip("-") or "test"
    return f"{prefix}/{slug}-{digest}"


@pytest.fixture
def make_seeder() -> Iterator[Callable[[RegistryServer], Seeder]]:
    """``make_seeder(server)``: a Seeder with the server's credentials and CA, closed after."""
    seeders: list[Seeder] = []

    def factory(server: RegistryServer) -> Seeder:
        seeder = Seeder.for_server(server)
        seeders.append(seeder)
        return seeder

    yield factory
    for seeder in seeders:
        seeder.close()


@pytest.fixture
def seeder(registry: RegistryServer, make_seeder: Callable[[RegistryServer], Seeder]) -> Seeder:
    """A Seeder for the plain session registry."""
    return make_seeder(registry)


@pytest.fixture
def fault_proxy() -> Iterator[Callable[..., FaultProxy]]:
    """``fault_proxy(server_or_url)``: a started FaultProxy in front of it, stopped after."""
    from tests.fixtures.fault_proxy import FaultProxy

    proxies: list[FaultProxy] = []

    def factory(upstream: RegistryServer | str, **kwargs: Any) -> FaultProxy:
        proxy = FaultProxy(upstream, **kwargs)
        proxies.append(proxy)
        return proxy.start()

    yield factory
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def config_repo(tmp_path: Path) -> Callable[..., ConfigRepo]:
    """``config_repo(files, name="repo")``: a bare remote and a pushed working clone."""
    made: dict[str, int] = {}

    def factory(files: Mapping[str, str | bytes] | None = None, name: str = "repo") -> ConfigRepo:
        made[name] = made.get(name, 0) + 1
        suffix = "" if made[name] == 1 else f"-{made[name]}"
        return make_config_repo(tmp_path / f"{name}{suffix}", files or {})

    return factory


COUNTING_GIT = """#!/bin/sh
echo "$1" >> "$GIT_CALLS"
exec "$REAL_GIT" "$@"
"""


@pytest.fixture
def counting_git(tmp_path: Path) -> dict[str, str]:
    """Environment under which every git process appends its subcommand to ``GIT_CALLS``."""
    real = shutil.which("git")
    assert real is not None
    bin_dir = tmp_path / "counting-bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(COUNTING_GIT)
    (bin_dir / "git").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_GIT": real}
