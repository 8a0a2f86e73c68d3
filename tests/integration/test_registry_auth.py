"""Authenticated registries: every credential source, bearer tokens, and no leaked secrets."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
import structlog

from reconciler import status
from reconciler.config import Config, RegistryAuth, RegistryConfig
from reconciler.image import Image, ImportFailure, ImportRequest
from reconciler.manifest import ACCEPT
from reconciler.registry import RegistryClient, RetryPolicy
from tests.fixtures.images import Seeder, build_image, sha256
from tests.fixtures.registry_server import RegistryServer
from tests.fixtures.standin import serve as _serve
from tests.fixtures.token_server import TokenServer

FAST = RetryPolicy(
    attempts=3, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0, max_retry_after=0
)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _env_auth(host: str) -> Config:
    auth = RegistryAuth(username_env="REG_USER", password_env="REG_PASS")
    return Config(registries=(RegistryConfig(host=host, auth=auth),))


async def _resolve(
    reference: str, *, config: Config | None = None, env: dict[str, str], **kwargs: Any
) -> Any:
    async with RegistryClient(config or Config(), env=env, retry=FAST, **kwargs) as client:
        return await client.resolve(ImportRequest(reference))


@pytest.fixture
def pushed(
    registry_htpasswd: RegistryServer, make_seeder: Callable[..., Seeder], repo_name: str
) -> tuple[str, str]:
    """(reference, digest) of an image on the htpasswd registry."""
    seeder = make_seeder(registry_htpasswd)
    return seeder.ref(repo_name, "1.0"), seeder.push_image(repo_name, "1.0")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


async def test_docker_config_auths(
    registry_htpasswd: RegistryServer, pushed: tuple[str, str], home: Path
) -> None:
    """Basic auth with credentials from ~/.docker/config.json ``auths``."""
    user, password = registry_htpasswd.auth  # type: ignore[misc]
    _write(
        home / ".docker" / "config.json",
        {"auths": {registry_htpasswd.host: {"auth": _basic(user, password)}}},
    )
    found = await _resolve(pushed[0], env={"HOME": str(home)})
    assert isinstance(found, Image)
    assert found.digest == pushed[1]


async def test_registry_auth_file(
    registry_htpasswd: RegistryServer, pushed: tuple[str, str], home: Path, tmp_path: Path
) -> None:
    """Basic auth with a containers auth.json named by REGISTRY_AUTH_FILE."""
    user, password = registry_htpasswd.auth  # type: ignore[misc]
    auth_file = _write(
        tmp_path / "auth.json",
        {"auths": {registry_htpasswd.host: {"username": user, "password": password}}},
    )
    env = {"HOME": str(home), "REGISTRY_AUTH_FILE": str(auth_file)}
    found = await _resolve(pushed[0], env=env)
    assert isinstance(found, Image)
    assert found.digest == pushed[1]


async def test_credential_helper(
    registry_htpasswd: RegistryServer, pushed: tuple[str, str], home: Path, tmp_path: Path
) -> None:
    """Basic auth from ``docker-credential-test get`` found on the injected PATH."""
    user, password = registry_htpasswd.auth  # type: ignore[misc]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-test"
    answer = json.dumps({"Username": user, "Secret": password})
    helper.write_text(
        f'#!/bin/sh\nread server\n[ "$server" = "{registry_htpasswd.host}" ] || exit 1\n'
        f"echo '{answer}'\n"
    )
    helper.chmod(0o755)
    config = Config(
        registries=(RegistryConfig(host=registry_htpasswd.host, auth=RegistryAuth(helper="test")),)
    )
    found = await _resolve(pushed[0], config=config, env={"HOME": str(home), "PATH": str(bin_dir)})
    assert isinstance(found, Image)
    assert found.digest == pushed[1]


async def test_environment_variables(
    registry_htpasswd: RegistryServer, pushed: tuple[str, str], home: Path
) -> None:
    """Basic auth from the environment variables named in ``auth.env``."""
    user, password = registry_htpasswd.auth  # type: ignore[misc]
    env = {"HOME": str(home), "REG_USER": user, "REG_PASS": password}
    found = await _resolve(pushed[0], config=_env_auth(registry_htpasswd.host), env=env)
    assert isinstance(found, Image)
    assert found.digest == pushed[1]


async def test_no_credentials(pushed: tuple[str, str], home: Path) -> None:
    """Without credentials the failure is permanent Unauthorized and says where we looked."""
    failure = await _resolve(pushed[0], env={"HOME": str(home)})
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.UNAUTHORIZED, False)
    assert ".docker/config.json" in failure.message


async def test_wrong_password_leaks_nothing(
    registry_htpasswd: RegistryServer,
    pushed: tuple[str, str],
    home: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused password is Unauthorized; it appears in no message, log line or output."""
    secret = "wrong-but-secret-password"
    env = {"HOME": str(home), "REG_USER": "alice", "REG_PASS": secret}
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        failure = await _resolve(pushed[0], config=_env_auth(registry_htpasswd.host), env=env)
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.UNAUTHORIZED
    captured = capsys.readouterr()
    texts = [failure.message, repr(failure), repr(events), caplog.text, captured.out, captured.err]
    encoded = _basic("alice", secret)
    assert not [t for t in texts if secret in t or encoded in t]


# --- bearer tokens ------------------------------------------------------------------------------
@pytest.fixture
def token_repo(
    registry_token: RegistryServer,
    token_server: TokenServer,
    make_seeder: Callable[..., Seeder],
    repo_name: str,
) -> tuple[Seeder, str]:
    """Two seeded repositories; the token server forgets the seeder's own token requests."""
    seeder = make_seeder(registry_token)
    seeder.push_tags_bulk(repo_name, ["a", "b", "c", "d"])
    seeder.push_tags_bulk(f"{repo_name}-other", ["a"])
    token_server.reset()
    return seeder, repo_name


def _token_env(registry_token: RegistryServer, home: Path) -> tuple[Config, dict[str, str]]:
    user, password = registry_token.auth  # type: ignore[misc]
    env = {"HOME": str(home), "REG_USER": user, "REG_PASS": password}
    return _env_auth(registry_token.host), env


class _ExpiredOnce:
    """Truthy exactly once: the token server issues one expired token, then valid ones."""

    def __init__(self) -> None:
        self.used = False

    def __bool__(self) -> bool:
        first, self.used = not self.used, True
        return first


async def test_token_cached_per_scope(
    registry_token: RegistryServer,
    token_server: TokenServer,
    token_repo: tuple[Seeder, str],
    home: Path,
) -> None:
    """One token per repository scope serves every request, sequential or concurrent."""
    seeder, repo = token_repo
    config, env = _token_env(registry_token, home)
    async with RegistryClient(config, env=env, retry=FAST) as client:
        first = await client.resolve(ImportRequest(seeder.ref(repo, "a")))
        rest = await client.resolve_all(
            [ImportRequest(seeder.ref(repo, tag)) for tag in ("b", "c", "d")]
        )
        other = await client.resolve(ImportRequest(seeder.ref(f"{repo}-other", "a")))
    assert all(isinstance(o, Image) for o in [first, other, *rest.values()])
    assert token_server.issued_count == 2
    assert {r.scopes for r in token_server.requests} == {
        (f"repository:{repo}:pull",),
        (f"repository:{repo}-other:pull",),
    }


async def test_concurrent_first_requests_share_a_token(
    registry_token: RegistryServer,
    token_server: TokenServer,
    token_repo: tuple[Seeder, str],
    home: Path,
) -> None:
    """Tags of one repository resolved at once, before any token exists, ask for one token."""
    seeder, repo = token_repo
    config, env = _token_env(registry_token, home)
    async with RegistryClient(config, env=env, retry=FAST) as client:
        results = await client.resolve_all(
            [ImportRequest(seeder.ref(repo, tag)) for tag in ("a", "b", "c", "d")]
        )
    assert all(isinstance(o, Image) for o in results.values())
    assert token_server.issued_count == 1


async def test_token_refetched_after_expires_in(
    registry_token: RegistryServer,
    token_server: TokenServer,
    token_repo: tuple[Seeder, str],
    home: Path,
) -> None:
    """A cached token is used until ``expires_in`` (less a margin), then fetched anew."""
    seeder, repo = token_repo
    config, env = _token_env(registry_token, home)
    now = [1000.0]
    async with RegistryClient(config, env=env, retry=FAST, clock=lambda: now[0]) as client:
        await client.resolve(ImportRequest(seeder.ref(repo, "a")))
        now[0] += token_server.expires_in - 30
        await client.resolve(ImportRequest(seeder.ref(repo, "b")))
        assert token_server.issued_count == 1
        now[0] += 60
        found = await client.resolve(ImportRequest(seeder.ref(repo, "c")))
    assert isinstance(found, Image)
    assert token_server.issued_count == 2


async def test_rejected_cached_token_is_refetched(
    registry_token: RegistryServer,
    token_server: TokenServer,
    token_repo: tuple[Seeder, str],
    home: Path,
) -> None:
    """A cached token the registry rejects is dropped and fetched once more."""
    seeder, repo = token_repo
    config, env = _token_env(registry_token, home)
    async with RegistryClient(config, env=env, retry=FAST) as client:
        await client.resolve(ImportRequest(seeder.ref(f"{repo}-other", "a")))
        token_server.issue_expired = _ExpiredOnce()  # type: ignore[assignment]
        found = await client.resolve(ImportRequest(seeder.ref(repo, "a")))
    assert isinstance(found, Image)
    assert token_server.issued_count == 3


async def test_rejected_tokens_fail_bounded(
    registry_token: RegistryServer,
    token_server: TokenServer,
    token_repo: tuple[Seeder, str],
    home: Path,
) -> None:
    """If the fresh token is rejected too, the tag fails Unauthorized after two token requests."""
    seeder, repo = token_repo
    config, env = _token_env(registry_token, home)
    async with RegistryClient(config, env=env, retry=FAST) as client:
        await client.resolve(ImportRequest(seeder.ref(f"{repo}-other", "a")))
        token_server.issue_expired = True
        failure = await client.resolve(ImportRequest(seeder.ref(repo, "a")))
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.UNAUTHORIZED
    assert token_server.issued_count == 3


async def test_anonymous_token(
    registry_token: RegistryServer,
    token_server: TokenServer,
    token_repo: tuple[Seeder, str],
    home: Path,
) -> None:
    """Without credentials an anonymous token is requested (public repositories)."""
    seeder, repo = token_repo
    token_server.anonymous_pull = True
    found = await _resolve(seeder.ref(repo, "a"), env={"HOME": str(home)})
    assert isinstance(found, Image)
    assert [r.account for r in token_server.requests] == [None]


async def test_anonymous_token_refused(
    registry_token: RegistryServer,
    token_server: TokenServer,
    token_repo: tuple[Seeder, str],
    home: Path,
) -> None:
    """A token server refusing anonymous access is a permanent Unauthorized failure."""
    seeder, repo = token_repo
    failure = await _resolve(seeder.ref(repo, "a"), env={"HOME": str(home)})
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.UNAUTHORIZED, False)


# --- redirects to blob storage ----------------------------------------------------------------
class _Storage(BaseHTTPRequestHandler):
    """Storage on another origin (as S3 behind Docker Hub): records Authorization and Accept."""

    protocol_version = "HTTP/1.1"
    blobs: ClassVar[dict[str, bytes]] = {}
    authorizations: ClassVar[list[str | None]] = []
    accepts: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).authorizations.append(self.headers.get("Authorization"))
        type(self).accepts.append(self.headers.get("Accept"))
        body = self.blobs[self.path.rsplit("/", 1)[-1]]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _redirecting_registry(
    storage: str, user: str, password: str, *, manifests_too: bool = False
) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + _basic(user, password)

    class Registry(BaseHTTPRequestHandler):
        """Basic-auth registry whose blob (and maybe manifest) GETs redirect to ``storage``."""

        protocol_version = "HTTP/1.1"
        manifests: ClassVar[dict[str, bytes]] = {}

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self._reply(401, b"{}", [("WWW-Authenticate", 'Basic realm="fake"')])
            elif "/blobs/" in self.path or manifests_too:
                name = self.path.rsplit("/", 1)[-1]
                self._reply(307, b"", [("Location", f"{storage}/store/{name}")])
            else:
                body = self.manifests[self.path.rsplit("/", 1)[-1]]
                self._reply(200, body, [("Content-Type", json.loads(body)["mediaType"])])

        def _reply(self, code: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(code)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Registry


async def test_blob_redirect_gets_no_credentials(home: Path) -> None:
    """A blob redirected to storage on another origin is fetched there without our credentials."""
    manifest, config, _ = build_image(labels={"org.opencontainers.image.version": "9"})
    _Storage.blobs = {sha256(config): config}
    _Storage.authorizations, _Storage.accepts = [], []
    with _serve(_Storage) as storage:
        handler = _redirecting_registry(f"http://{storage}", "carol", "carol-secret")
        handler.manifests = {"1.0": manifest}  # type: ignore[attr-defined]
        with _serve(handler) as host:
            env = {"HOME": str(home), "REG_USER": "carol", "REG_PASS": "carol-secret"}
            found = await _resolve(f"{host}/fake/app:1.0", config=_env_auth(host), env=env)
    assert isinstance(found, Image)
    assert found.labels == {"org.opencontainers.image.version": "9"}
    assert _Storage.authorizations == [None]


class _ChallengingStorage(BaseHTTPRequestHandler):
    """Storage on another origin that answers 401 naming itself as token realm; records all."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        realm = f"http://{self.headers['Host']}/token"
        body = b'{"token": "t"}' if self.path.startswith("/token") else b"{}"
        self.send_response(200 if self.path.startswith("/token") else 401)
        self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="s"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


async def test_challenge_from_redirect_target_gets_no_credentials(home: Path) -> None:
    """A 401 from another origin is not answered: its token realm never sees our credentials."""
    manifest, _, _ = build_image()
    _ChallengingStorage.seen = []
    with _serve(_ChallengingStorage) as storage:
        handler = _redirecting_registry(f"http://{storage}", "fay", "fay-secret")
        handler.manifests = {"1.0": manifest}  # type: ignore[attr-defined]
        with _serve(handler) as host:
            env = {"HOME": str(home), "REG_USER": "fay", "REG_PASS": "fay-secret"}
            failure = await _resolve(f"{host}/fake/app:1.0", config=_env_auth(host), env=env)
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.UNAUTHORIZED
    assert [path.split("/")[1] for path, _ in _ChallengingStorage.seen] == ["store"]
    assert [authorization for _, authorization in _ChallengingStorage.seen] == [None]


async def test_redirected_blob_with_other_bytes_refused(home: Path) -> None:
    """Storage answering a config digest with other bytes is a DigestMismatch, never an image."""
    manifest, config, _ = build_image()
    _Storage.blobs = {sha256(config): config.replace(b"linux", b"LINUX")}
    _Storage.authorizations, _Storage.accepts = [], []
    with _serve(_Storage) as storage:
        handler = _redirecting_registry(f"http://{storage}", "erin", "erin-secret")
        handler.manifests = {"1.0": manifest}  # type: ignore[attr-defined]
        with _serve(handler) as host:
            env = {"HOME": str(home), "REG_USER": "erin", "REG_PASS": "erin-secret"}
            failure = await _resolve(f"{host}/fake/app:1.0", config=_env_auth(host), env=env)
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.DIGEST_MISMATCH, False)


async def test_manifest_redirect_keeps_accept_not_credentials(home: Path) -> None:
    """A manifest redirected to another origin is asked for with every type, without credentials."""
    manifest, config, _ = build_image()
    _Storage.blobs = {"1.0": manifest, sha256(config): config}
    _Storage.authorizations, _Storage.accepts = [], []
    with _serve(_Storage) as storage:
        handler = _redirecting_registry(
            f"http://{storage}", "dan", "dan-secret", manifests_too=True
        )
        with _serve(handler) as host:
            env = {"HOME": str(home), "REG_USER": "dan", "REG_PASS": "dan-secret"}
            found = await _resolve(f"{host}/fake/app:1.0", config=_env_auth(host), env=env)
    assert isinstance(found, Image)
    assert found.digest == sha256(manifest)
    assert _Storage.accepts[0] == ACCEPT
    assert _Storage.authorizations == [None, None]


class _OAuthRegistry(BaseHTTPRequestHandler):
    """A bearer registry whose realm takes only the OAuth2 refresh-token POST (identity tokens)."""

    protocol_version = "HTTP/1.1"
    manifest, config, _layer = build_image()
    forms: ClassVar[list[dict[str, list[str]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        type(self).forms.append(form)
        if self.path != "/oauth2/token" or form.get("refresh_token") != ["refresh-me"]:
            self._reply(401, b"{}")
            return
        self._reply(200, json.dumps({"access_token": "granted", "expires_in": 300}).encode())

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer granted":
            host = self.headers["Host"]
            challenge = (
                f'Bearer realm="http://{host}/oauth2/token",service="fake",'
                'scope="repository:fake/app:pull"'
            )
            self._reply(401, b"{}", (("WWW-Authenticate", challenge),))
            return
        body = self.config if "/blobs/" in self.path else self.manifest
        self._reply(200, body, (("Content-Type", "application/vnd.oci.image.manifest.v1+json"),))

    def _reply(self, code: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


async def test_identity_token_uses_oauth2_refresh(home: Path) -> None:
    """An identity token is exchanged by the OAuth2 refresh-token POST, not sent as a password."""
    _OAuthRegistry.forms = []
    with _serve(_OAuthRegistry) as host:
        _write(home / ".docker" / "config.json", {"auths": {host: {"identitytoken": "refresh-me"}}})
        found = await _resolve(f"{host}/fake/app:1.0", env={"HOME": str(home)})
    assert isinstance(found, Image)
    assert len(_OAuthRegistry.forms) == 1
    assert _OAuthRegistry.forms[0]["grant_type"] == ["refresh_token"]
    assert _OAuthRegistry.forms[0]["scope"] == ["repository:fake/app:pull"]
    assert _OAuthRegistry.forms[0]["service"] == ["fake"]


def _bearer_registry(token: str, failures: int = 0) -> type[BaseHTTPRequestHandler]:
    """A bearer registry whose token server (same origin) issues ``token`` to anyone.

    The token server answers 503 to its first ``failures`` requests; ``token_requests``
    counts them all.
    """

    class Registry(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        manifest, config, _layer = build_image()
        token_requests: ClassVar[list[str]] = []

        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                self.token_requests.append(self.path)
                if len(self.token_requests) <= failures:
                    self._reply(503, b"{}")
                    return
                self._reply(200, json.dumps({"token": token, "expires_in": 300}).encode())
            elif self.headers.get("Authorization") != f"Bearer {token}":
                challenge = f'Bearer realm="http://{self.headers["Host"]}/token",service="fake"'
                self._reply(401, b"{}", (("WWW-Authenticate", challenge),))
            else:
                body = self.config if "/blobs/" in self.path else self.manifest
                self._reply(
                    200, body, (("Content-Type", "application/vnd.oci.image.manifest.v1+json"),)
                )

        def _reply(self, code: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
            self.send_response(code)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Registry


async def test_unusable_token_leaks_nothing(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A token that cannot be sent in a header is Unauthorized; it appears in no message or log."""
    secret = "issued-secret-token"
    caplog.set_level(logging.DEBUG)
    registry = _bearer_registry(f"{secret}\r\nX-Injected: yes")
    with _serve(registry) as host, structlog.testing.capture_logs() as events:
        failure = await _resolve(f"{host}/fake/app:1.0", env={"HOME": str(home)})
    assert isinstance(failure, ImportFailure)
    assert (failure.reason, failure.transient) == (status.UNAUTHORIZED, False)
    texts = [failure.message, repr(failure), repr(events), caplog.text]
    assert not [t for t in texts if secret in t]


async def test_token_server_unavailable_then_served(home: Path) -> None:
    """A token server answering 503 is retried like the registry, and the tag resolves."""
    registry = _bearer_registry("good-token", failures=2)
    with _serve(registry) as host:
        found = await _resolve(f"{host}/fake/app:1.0", env={"HOME": str(home)})
    assert isinstance(found, Image)
    assert len(registry.token_requests) == 3  # type: ignore[attr-defined]
