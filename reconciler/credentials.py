"""Registry credentials, found by reference the way container tools find them; never stored.

Credentials belong to the operator, never to the repository: ``plan`` and ``validate`` run on
pull requests, where ``streamlock.yaml`` is whatever the author wrote, and an ``auth:`` entry there
could point the operator's secrets at any host. So the sources come from the operator's file
(``--auth-config`` / ``$STREAMLOCK_AUTH_CONFIG``, the ``registries[].auth`` shape) and discovery;
the repository's ``auth:`` counts only with ``STREAMLOCK_TRUST_REPO_AUTH=1``.

Where they come from, per registry (an ``auth:`` entry): ``env`` (two variable
names), ``helper`` (``docker-credential-<name>``), ``authFile`` (containers ``auth.json``) and
``configFile`` (Docker ``config.json``), tried in that order. A registry without ``auth:`` gets the
discovery order of podman/skopeo and then Docker: ``$REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json``, ``$XDG_CONFIG_HOME/containers/auth.json``,
``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``), ``~/.dockercfg``. Inside one
file ``credHelpers[host]`` beats ``credsStore`` beats ``auths``, and the most specific
``host/namespace/repo`` key of ``auths`` wins.

The parsing is pure; the shell is reading files and running a helper. Secrets never appear in
``repr``, log lines or exception messages: errors name the file, the key or the variable, never
the value. The environment and the home directory are injected (an ``env`` mapping), so tests
need no monkeypatching.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from reconciler import schema
from reconciler.config import Config, RegistryAuth, parse_config
from reconciler.errors import AuthError, InputError, ValidationError
from reconciler.reference import DOCKER_HUB

log = structlog.get_logger("streamlock.credentials")

DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
# auth.docker.io is Docker Hub's token realm: the Hub credential may go there.
_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "auth.docker.io"})
AUTH_CONFIG_ENV = "STREAMLOCK_AUTH_CONFIG"
TRUST_REPO_AUTH_ENV = "STREAMLOCK_TRUST_REPO_AUTH"
HELPER_TIMEOUT = 10.0
MAX_AUTH_FILE_BYTES = 1024 * 1024
IDENTITY_TOKEN_USER = "<token>"


@dataclass(frozen=True, slots=True)
class Credential:
    """A username with a password, or an identity (refresh) token. ``repr`` hides the secret."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str = ""  # where it was found (a path, a helper, env variable names): safe to log

    def basic_header(self) -> str | None:
        """The ``Authorization`` value for basic auth, None without a username and password."""
        if self.username is None or self.password is None:
            return None
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class AuthFile:
    """A parsed Docker ``config.json``, containers ``auth.json`` or legacy ``.dockercfg``."""

    path: str
    auths: Mapping[str, Credential] = field(default_factory=dict)
    cred_helpers: Mapping[str, str] = field(default_factory=dict)
    creds_store: str | None = None


@dataclass(frozen=True, slots=True)
class AuthEntry:
    """Which source serves one registry host; relative paths are read from ``base_dir``."""

    host: str
    auth: RegistryAuth
    base_dir: Path | None = None


# --- pure parsing ---------------------------------------------------------------------------
def normalize_key(key: str) -> str:
    """An ``auths``/``credHelpers`` key as ``host[/path]``; every Docker Hub spelling -> docker.io.

    URL keys (``https://index.docker.io/v1/``, ``http://host:5000/v2/``) keep only their host, as
    Docker and containers/image do; plain keys may name a namespace or repository.
    """
    key = key.strip()
    if key.startswith(("http://", "https://")):
        key = key.split("://", 1)[1].split("/", 1)[0]
    key = key.rstrip("/")
    host, sep, rest = key.partition("/")
    if host.lower() in _HUB_HOSTS:
        host = DOCKER_HUB
    return f"{host}{sep}{rest}"


def candidate_keys(registry: str, repository: str) -> list[str]:
    """Lookup keys, most specific first: ``host/ns/repo``, ``host/ns``, ``host``."""
    host = normalize_key(registry)
    parts = [p for p in repository.split("/") if p]
    keys = [f"{host}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]
    keys.append(host)
    return keys


def server_url(registry: str) -> str:
    """What a credential helper is asked for: Docker Hub's legacy URL, else the host."""
    host = normalize_key(registry)
    return DOCKER_HUB_SERVER_URL if host == DOCKER_HUB else host


def _decode_entry(entry: Any, key: str, source: str) -> Credential | None:
    if not isinstance(entry, Mapping):
        raise InputError(f"{source}: auths entry {key!r} is not an object")
    username, password = entry.get("username"), entry.get("password")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InputError(
                f"{source}: the 'auth' value for {key!r} is not base64 of user:password"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise InputError(f"{source}: the 'auth' value for {key!r} has no ':' separator")
    token = entry.get("identitytoken")
    token = token if isinstance(token, str) and token else None
    if not (isinstance(username, str) and username) and token is None:
        return None
    return Credential(
        username=username if isinstance(username, str) and username else None,
        password=password if isinstance(password, str) else None,
        identity_token=token,
        source=source,
    )


def parse_auth_file(data: Any, source: str) -> AuthFile:
    """Parse the JSON of a ``config.json``/``auth.json`` (wrap a ``.dockercfg`` in ``auths``)."""
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: not a JSON object")
    raw_auths = data.get("auths") or {}
    if not isinstance(raw_auths, Mapping):
        raise InputError(f"{source}: 'auths' is not an object")
    auths: dict[str, Credential] = {}
    for key, entry in raw_auths.items():
        credential = _decode_entry(entry, str(key), source)
        if credential is not None:
            auths.setdefault(normalize_key(str(key)), credential)
    helpers_raw = data.get("credHelpers") or {}
    if not isinstance(helpers_raw, Mapping):
        raise InputError(f"{source}: 'credHelpers' is not an object")
    helpers = {normalize_key(str(k)): v for k, v in helpers_raw.items() if isinstance(v, str) and v}
    store = data.get("credsStore")
    return AuthFile(
        path=source,
        auths=auths,
        cred_helpers=helpers,
        creds_store=store if isinstance(store, str) and store else None,
    )


@dataclass(frozen=True, slots=True)
class HelperLookup:
    """Ask ``docker-credential-<helper>`` about ``server`` (a host, or Docker Hub's URL)."""

    helper: str
    server: str


def lookup(
    auth_file: AuthFile, registry: str, repository: str
) -> Iterator[Credential | HelperLookup]:
    """What to try in one file, best first: its helper for the host, its store, its auths."""
    host = normalize_key(registry)
    helper = auth_file.cred_helpers.get(host)
    if helper is not None:
        yield HelperLookup(helper, server_url(registry))
    if auth_file.creds_store is not None:
        yield HelperLookup(auth_file.creds_store, server_url(registry))
    for key in candidate_keys(registry, repository):
        credential = auth_file.auths.get(key)
        if credential is not None:
            yield credential


def parse_helper_output(output: bytes, helper: str) -> Credential | None:
    """``{"ServerURL", "Username", "Secret"}``; a ``<token>`` user means an identity token."""
    source = f"docker-credential-{helper}"
    try:
        data = json.loads(output)
    except (ValueError, UnicodeDecodeError):
        raise AuthError(f"{source} printed something that is not JSON") from None
    if not isinstance(data, Mapping):
        raise AuthError(f"{source} printed JSON that is not an object")
    username, secret = data.get("Username"), data.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None
    if username == IDENTITY_TOKEN_USER:
        return Credential(identity_token=secret, source=source)
    if not isinstance(username, str) or not username:
        return None
    return Credential(username=username, password=secret, source=source)


def discovery_paths(env: Mapping[str, str]) -> list[tuple[Path, bool]]:
    """Auth files in the container tools' order; the flag marks the legacy ``.dockercfg``."""
    home = Path(env.get("HOME") or "~").expanduser()
    paths: list[tuple[Path, bool]] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append((Path(env["REGISTRY_AUTH_FILE"]), False))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append((Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json", False))
    config_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    paths.append((config_home / "containers" / "auth.json", False))
    docker_config = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    paths.append((docker_config / "config.json", False))
    paths.append((home / ".dockercfg", True))
    return paths


def expand_path(text: str, env: Mapping[str, str], base_dir: Path | None) -> Path:
    """``~`` from the injected HOME; relative paths from the repository root."""
    if text == "~" or text.startswith("~/"):
        home = env.get("HOME")
        path = Path(home) / text[2:] if home else Path(text).expanduser()
    else:
        path = Path(text)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def config_entries(config: Config, base_dir: Path | None) -> tuple[AuthEntry, ...]:
    """The ``auth:`` entries a config names, relative paths from ``base_dir``."""
    return tuple(
        AuthEntry(r.host, r.auth, base_dir) for r in config.registries if r.auth is not None
    )


def choose_entries(
    repo: Config,
    operator: Sequence[AuthEntry],
    *,
    repo_dir: Path | None,
    trust_repo: bool,
) -> tuple[tuple[AuthEntry, ...], tuple[str, ...]]:
    """The entries in force and the repository hosts whose ``auth:`` is ignored.

    The operator's entry for a host beats the repository's; the repository's count only when
    the operator trusts it (streamlock runs on a protected branch only).
    """
    chosen = list(operator)
    taken = {normalize_key(entry.host) for entry in operator}
    ignored: list[str] = []
    for entry in config_entries(repo, repo_dir):
        if normalize_key(entry.host) in taken:
            continue
        if trust_repo:
            chosen.append(entry)
        else:
            ignored.append(entry.host)
    return tuple(chosen), tuple(ignored)


_OPERATOR_KEYS = {"host", "auth"}


def parse_operator_auth(data: bytes, path: str, base_dir: Path | None) -> tuple[AuthEntry, ...]:
    """An operator auth file: ``registries: [{host, auth}]`` exactly as in ``streamlock.yaml``."""
    config = parse_config(data, path)
    problems = []
    for document in schema.parse_documents(data, path)[:1]:
        body = document.data if isinstance(document.data, Mapping) else {}
        for key in body:
            if key != "registries":
                problems.append(
                    document.problem((key,), "an auth config holds only registries", key=True)
                )
        for index, item in enumerate(body.get("registries") or ()):
            for key in item:
                if key not in _OPERATOR_KEYS:
                    problems.append(
                        document.problem(
                            ("registries", index, key),
                            "an auth config entry holds only host and auth",
                            key=True,
                        )
                    )
            if "auth" not in item:
                problems.append(document.problem(("registries", index), "auth is missing"))
    if problems:
        raise ValidationError(problems)
    return config_entries(config, base_dir)


def load_operator_auth(path: Path) -> tuple[AuthEntry, ...]:
    """Read the operator's auth file; its relative paths are taken from its own directory."""
    try:
        with path.open("rb") as handle:
            data = handle.read(schema.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(
            f"{path}: cannot read the auth config: {exc.strerror}",
            hint=f"check --auth-config or ${AUTH_CONFIG_ENV}",
        ) from exc
    return parse_operator_auth(data, str(path), path.resolve().parent)


def operator_store(
    config: Config,
    repo_dir: Path | None,
    *,
    operator: Sequence[AuthEntry] | None = None,
    env: Mapping[str, str] | None = None,
) -> CredentialStore:
    """The credential store for a pass: the operator's entries, discovery, and the repository's
    ``auth:`` only when ``$STREAMLOCK_TRUST_REPO_AUTH`` is ``1`` (warned about otherwise).

    Without ``operator``, ``$STREAMLOCK_AUTH_CONFIG`` names the operator's file, if set.
    """
    env = dict(os.environ if env is None else env)
    if operator is None:
        named = env.get(AUTH_CONFIG_ENV)
        operator = load_operator_auth(Path(named)) if named else ()
    trust = env.get(TRUST_REPO_AUTH_ENV) == "1"
    entries, ignored = choose_entries(config, operator, repo_dir=repo_dir, trust_repo=trust)
    for host in ignored:
        log.warning(
            "auth: in streamlock.yaml ignored; credentials are the operator's "
            f"(--auth-config, or {TRUST_REPO_AUTH_ENV}=1 on a protected branch)",
            registry=host,
        )
    return CredentialStore(config, env=env, base_dir=repo_dir, entries=entries)


# --- the shell: files and helpers -------------------------------------------------------------
class CredentialStore:
    """Finds the credential for a registry and repository; results are kept for its lifetime."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        env: Mapping[str, str] | None = None,
        base_dir: Path | None = None,
        helper_timeout: float = HELPER_TIMEOUT,
        entries: Sequence[AuthEntry] | None = None,
    ) -> None:
        """``entries`` are the sources in force; without them, the ``auth:`` entries of
        ``config`` (relative to ``base_dir``): callers that read a repository pass
        :func:`operator_store` instead."""
        self._config = config or Config()
        self._entries = tuple(
            config_entries(self._config, base_dir) if entries is None else entries
        )
        self._env = dict(os.environ if env is None else env)
        self._helper_timeout = helper_timeout
        self._files: dict[Path, AuthFile | None] = {}
        self._found: dict[tuple[str, str], Credential | None] = {}
        self._helper_results: dict[tuple[str, str], Credential | None] = {}

    async def get(self, registry: str, repository: str) -> Credential | None:
        """The credential for ``registry`` (``docker.io`` for Docker Hub) and ``repository``."""
        key = (normalize_key(registry), repository)
        if key not in self._found:
            self._found[key] = await self._find(registry, repository)
        return self._found[key]

    def describe_sources(self, registry: str) -> str:
        """Where we looked, for an error message (paths and variable names, never values)."""
        entry = self._auth_for(registry)
        if entry is not None:
            auth, base = entry.auth, entry.base_dir
            parts = []
            if auth.username_env:
                parts.append(f"env {auth.username_env}/{auth.password_env}")
            if auth.helper:
                parts.append(f"docker-credential-{auth.helper}")
            if auth.auth_file:
                parts.append(str(expand_path(auth.auth_file, self._env, base)))
            if auth.config_file:
                parts.append(str(expand_path(auth.config_file, self._env, base)))
            return ", ".join(parts)
        return ", ".join(str(p) for p, _ in discovery_paths(self._env))

    def _auth_for(self, registry: str) -> AuthEntry | None:
        host = normalize_key(registry)
        for candidate in self._entries:
            if normalize_key(candidate.host) == host:
                return candidate
        return None

    async def _find(self, registry: str, repository: str) -> Credential | None:
        entry = self._auth_for(registry)
        if entry is not None:
            return await self._from_config(entry, registry, repository)
        for path, legacy in discovery_paths(self._env):
            found = await self._from_file(path, registry, repository, legacy=legacy)
            if found is not None:
                return found
        return None

    async def _from_config(
        self, entry: AuthEntry, registry: str, repository: str
    ) -> Credential | None:
        auth = entry.auth
        if auth.username_env or auth.password_env:
            names = f"{auth.username_env}/{auth.password_env}"
            username = self._env.get(auth.username_env or "")
            password = self._env.get(auth.password_env or "")
            if not username or password is None:
                missing = auth.username_env if not username else auth.password_env
                raise AuthError(
                    f"environment variable {missing} (auth.env for {registry}) is not set",
                    hint="set it in the reconciler's environment",
                )
            return Credential(username=username, password=password, source=f"env {names}")
        if auth.helper:
            found = await self._run_helper(auth.helper, server_url(registry))
            if found is not None:
                return found
        for text in (auth.auth_file, auth.config_file):
            if text:
                path = expand_path(text, self._env, entry.base_dir)
                found = await self._from_file(path, registry, repository, legacy=False)
                if found is not None:
                    return found
        return None

    async def _from_file(
        self, path: Path, registry: str, repository: str, *, legacy: bool
    ) -> Credential | None:
        auth_file = self._read(path, legacy=legacy)
        if auth_file is None:
            return None
        for candidate in lookup(auth_file, registry, repository):
            if isinstance(candidate, Credential):
                return candidate
            found = await self._run_helper(candidate.helper, candidate.server)
            if found is not None:
                return found
        return None

    def _read(self, path: Path, *, legacy: bool) -> AuthFile | None:
        if path not in self._files:
            self._files[path] = _read_auth_file(path, legacy=legacy)
        return self._files[path]

    async def _run_helper(self, helper: str, server: str) -> Credential | None:
        key = (helper, server)
        if key not in self._helper_results:
            self._helper_results[key] = await asyncio.to_thread(
                run_helper, helper, server, self._env, self._helper_timeout
            )
        return self._helper_results[key]


def _read_auth_file(path: Path, *, legacy: bool) -> AuthFile | None:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_AUTH_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{path}: cannot read credentials file: {exc.strerror}") from exc
    if len(raw) > MAX_AUTH_FILE_BYTES:
        raise InputError(f"{path}: credentials file larger than {MAX_AUTH_FILE_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{path}: credentials file is not valid JSON") from None
    if legacy and isinstance(data, Mapping) and "auths" not in data:
        data = {"auths": data}
    return parse_auth_file(data, str(path))


def run_helper(
    helper: str, server: str, env: Mapping[str, str], timeout: float = HELPER_TIMEOUT
) -> Credential | None:
    """``docker-credential-<helper> get`` with the server URL on stdin; None if it has none."""
    name = f"docker-credential-{helper}"
    if "/" in helper or not helper:
        raise AuthError(f"invalid credential helper name {helper!r}")
    executable = shutil.which(name, path=env.get("PATH", os.defpath))
    if executable is None:
        raise AuthError(f"credential helper {name} is not on PATH")
    try:
        result = subprocess.run(
            [executable, "get"],
            input=server.encode(),
            capture_output=True,
            env=dict(env),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {name} did not answer within {timeout:g}s") from None
    except OSError as exc:
        raise AuthError(f"credential helper {name} could not run: {exc.strerror}") from None
    if result.returncode != 0:
        if b"credentials not found" in (result.stdout + result.stderr).lower():
            return None
        # The helper's output may hold secrets; report only the exit status.
        raise AuthError(f"credential helper {name} failed for {server} (exit {result.returncode})")
    return parse_helper_output(result.stdout, helper)
