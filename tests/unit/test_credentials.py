"""Where registry credentials come from, in which order, and that secrets never leak."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from reconciler.config import Config, RegistryAuth, RegistryConfig
from reconciler.credentials import (
    Credential,
    CredentialStore,
    candidate_keys,
    normalize_key,
    parse_auth_file,
)
from reconciler.errors import AuthError, InputError

SECRET = "s3cr3t-value"


def _auth(user: str, password: str = SECRET) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _helper(bin_dir: Path, name: str, script: str) -> None:
    """A ``docker-credential-<name>`` shell script; it sees the server URL on stdin."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\nread server\n" + script)
    path.chmod(0o755)


def _answer(user: str) -> str:
    return f'printf \'{{"ServerURL":"%s","Username":"{user}","Secret":"{SECRET}"}}\' "$server"\n'


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(home: Path, tmp_path: Path) -> dict[str, str]:
    home.mkdir()
    return {"HOME": str(home), "PATH": str(tmp_path / "bin")}


async def _user(env: dict[str, str], registry: str = "reg.example", repo: str = "ns/app") -> str:
    credential = await CredentialStore(Config(), env=env).get(registry, repo)
    assert credential is not None
    assert credential.username is not None
    return credential.username


@pytest.mark.parametrize(
    ("key", "normal"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io/library/python", "docker.io/library/python"),
        ("http://reg.example:5000/v2/", "reg.example:5000"),
        ("reg.example/ns/app", "reg.example/ns/app"),
    ],
)
def test_normalize_key(key: str, normal: str) -> None:
    """URL keys keep their host; every Docker Hub spelling is docker.io."""
    assert normalize_key(key) == normal


def test_candidate_keys_most_specific_first() -> None:
    """Lookup tries host/ns/repo, then host/ns, then the host."""
    assert candidate_keys("reg.example", "ns/sub/app") == [
        "reg.example/ns/sub/app",
        "reg.example/ns/sub",
        "reg.example/ns",
        "reg.example",
    ]


def test_parse_auths_entry_forms() -> None:
    """``auth`` (base64 user:password), username/password and identitytoken are understood."""
    parsed = parse_auth_file(
        {
            "auths": {
                "a.example": _auth("alice"),
                "b.example": {"username": "bob", "password": SECRET},
                "c.example": {"identitytoken": "refresh-token"},
                "d.example": {},
            }
        },
        "cfg.json",
    )
    assert parsed.auths["a.example"].username == "alice"
    assert parsed.auths["a.example"].password == SECRET
    assert parsed.auths["b.example"].username == "bob"
    assert parsed.auths["c.example"].identity_token == "refresh-token"
    assert "d.example" not in parsed.auths


def test_bad_base64_names_key_not_secret() -> None:
    """A broken ``auth`` value is an input error naming the file and key, not the value."""
    with pytest.raises(InputError) as caught:
        parse_auth_file({"auths": {"a.example": {"auth": "%%" + SECRET}}}, "cfg.json")
    assert "a.example" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_credential_repr_hides_secret() -> None:
    """repr (and so any log of the object) never shows the password or token."""
    credential = Credential("alice", SECRET, identity_token=SECRET, source="x")
    assert SECRET not in repr(credential)


def test_auth_file_repr_hides_secrets() -> None:
    """A parsed auth file shows no password, token or base64 ``auth`` value in its repr."""
    encoded = _auth("alice")["auth"]
    parsed = parse_auth_file(
        {
            "auths": {
                "a.example": {"auth": encoded},
                "b.example": {"username": "bob", "password": SECRET},
                "c.example": {"identitytoken": SECRET},
            }
        },
        "cfg.json",
    )
    assert not [s for s in (SECRET, encoded) if s in repr(parsed)]


@pytest.mark.parametrize(
    ("present", "winner"),
    [
        (
            ("registry_auth_file", "runtime", "config_home", "docker", "dockercfg"),
            "registry_auth_file",
        ),
        (("runtime", "config_home", "docker", "dockercfg"), "runtime"),
        (("config_home", "docker", "dockercfg"), "config_home"),
        (("docker", "dockercfg"), "docker"),
        (("dockercfg",), "dockercfg"),
    ],
)
async def test_discovery_order(
    env: dict[str, str], home: Path, tmp_path: Path, present: tuple[str, ...], winner: str
) -> None:
    """REGISTRY_AUTH_FILE, XDG runtime, XDG config, DOCKER_CONFIG, ~/.dockercfg, in that order."""
    files = {
        "registry_auth_file": tmp_path / "explicit.json",
        "runtime": tmp_path / "run" / "containers" / "auth.json",
        "config_home": tmp_path / "xdg" / "containers" / "auth.json",
        "docker": tmp_path / "dockercfg-dir" / "config.json",
    }
    env |= {
        "REGISTRY_AUTH_FILE": str(files["registry_auth_file"]),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "DOCKER_CONFIG": str(tmp_path / "dockercfg-dir"),
    }
    for name in present:
        if name == "dockercfg":
            _write(home / ".dockercfg", {"reg.example": _auth(name)})
        else:
            _write(files[name], {"auths": {"reg.example": _auth(name)}})
    assert await _user(env) == winner


async def test_default_paths_from_home(env: dict[str, str], home: Path) -> None:
    """Without XDG or DOCKER_CONFIG variables, ~/.config and ~/.docker are read."""
    _write(home / ".docker" / "config.json", {"auths": {"reg.example": _auth("docker")}})
    assert await _user(env) == "docker"
    _write(home / ".config" / "containers" / "auth.json", {"auths": {"reg.example": _auth("xdg")}})
    assert await _user(env) == "xdg"


async def test_most_specific_key_wins(env: dict[str, str], home: Path) -> None:
    """``host/ns/repo`` beats ``host/ns`` beats ``host`` within one file."""
    _write(
        home / ".docker" / "config.json",
        {
            "auths": {
                "reg.example": _auth("host"),
                "reg.example/ns": _auth("namespace"),
                "reg.example/ns/app": _auth("repo"),
            }
        },
    )
    assert await _user(env, repo="ns/app") == "repo"
    assert await _user(env, repo="ns/other") == "namespace"
    assert await _user(env, repo="elsewhere/x") == "host"


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io"])
async def test_docker_hub_keys(env: dict[str, str], home: Path, key: str) -> None:
    """Docker Hub credentials are found under any of Docker's spellings of its key."""
    _write(home / ".docker" / "config.json", {"auths": {key: _auth("hub")}})
    assert await _user(env, registry="docker.io", repo="library/python") == "hub"


async def test_cred_helper_beats_store_beats_auths(
    env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    """``credHelpers[host]`` is asked before ``credsStore``, which is asked before ``auths``."""
    _helper(tmp_path / "bin", "perhost", _answer("from-helper"))
    _helper(tmp_path / "bin", "store", _answer("from-store"))
    config = {
        "auths": {"reg.example": _auth("from-auths")},
        "credHelpers": {"reg.example": "perhost"},
        "credsStore": "store",
    }
    _write(home / ".docker" / "config.json", config)
    assert await _user(env) == "from-helper"
    del config["credHelpers"]
    _write(home / ".docker" / "config.json", config)
    assert await _user(env) == "from-store"


async def test_helper_not_found_falls_back_to_auths(
    env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    """A helper answering "credentials not found" lets the file's ``auths`` answer."""
    _helper(tmp_path / "bin", "store", "echo 'credentials not found in native keychain'\nexit 1\n")
    _write(
        home / ".docker" / "config.json",
        {"auths": {"reg.example": _auth("from-auths")}, "credsStore": "store"},
    )
    assert await _user(env) == "from-auths"


async def test_helper_gets_docker_hub_url(env: dict[str, str], home: Path, tmp_path: Path) -> None:
    """Helpers are asked about Docker Hub by its legacy URL, other registries by host."""
    _helper(
        tmp_path / "bin",
        "echo",
        f'printf \'{{"Username":"%s","Secret":"{SECRET}"}}\' "$server"\n',
    )
    _write(home / ".docker" / "config.json", {"credsStore": "echo"})
    assert await _user(env, registry="docker.io") == "https://index.docker.io/v1/"
    assert await _user(env, registry="reg.example:5000") == "reg.example:5000"


async def test_helper_identity_token(env: dict[str, str], home: Path, tmp_path: Path) -> None:
    """A helper's ``<token>`` username means the secret is an identity (refresh) token."""
    _helper(tmp_path / "bin", "tok", f'echo \'{{"Username":"<token>","Secret":"{SECRET}"}}\'\n')
    _write(home / ".docker" / "config.json", {"credsStore": "tok"})
    credential = await CredentialStore(Config(), env=env).get("reg.example", "ns/app")
    assert credential is not None
    assert (credential.username, credential.identity_token) == (None, SECRET)


async def test_failing_helper_does_not_leak_output(
    env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    """A helper that fails is an AuthError with its exit status, never its output."""
    _helper(tmp_path / "bin", "broken", f"echo '{SECRET}'; echo '{SECRET}' >&2; exit 3\n")
    _write(home / ".docker" / "config.json", {"credsStore": "broken"})
    with pytest.raises(AuthError, match="exit 3") as caught:
        await CredentialStore(Config(), env=env).get("reg.example", "ns/app")
    assert SECRET not in str(caught.value)


async def test_missing_helper(env: dict[str, str], home: Path) -> None:
    """A helper that is not on PATH is an AuthError naming the executable."""
    _write(home / ".docker" / "config.json", {"credsStore": "nowhere"})
    with pytest.raises(AuthError, match="docker-credential-nowhere"):
        await CredentialStore(Config(), env=env).get("reg.example", "ns/app")


def _config(auth: RegistryAuth, host: str = "reg.example") -> Config:
    return Config(registries=(RegistryConfig(host=host, auth=auth),))


async def test_configured_env_variables(env: dict[str, str]) -> None:
    """``auth.env`` names the variables holding username and password."""
    env |= {"REG_USER": "envuser", "REG_PASS": SECRET}
    store = CredentialStore(
        _config(RegistryAuth(username_env="REG_USER", password_env="REG_PASS")), env=env
    )
    credential = await store.get("reg.example", "ns/app")
    assert credential == Credential("envuser", SECRET, source="env REG_USER/REG_PASS")


async def test_configured_env_variable_missing(env: dict[str, str]) -> None:
    """A named variable that is unset is an AuthError naming the variable."""
    store = CredentialStore(
        _config(RegistryAuth(username_env="REG_USER", password_env="REG_PASS")), env=env
    )
    with pytest.raises(AuthError, match="REG_USER"):
        await store.get("reg.example", "ns/app")


async def test_configured_auth_replaces_discovery(env: dict[str, str], home: Path) -> None:
    """A registry with ``auth:`` uses only its sources, not the discovery paths."""
    _write(home / ".docker" / "config.json", {"auths": {"reg.example": _auth("discovered")}})
    store = CredentialStore(_config(RegistryAuth(auth_file="/nonexistent/auth.json")), env=env)
    assert await store.get("reg.example", "ns/app") is None


async def test_configured_config_file_paths(
    env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    """``configFile`` expands ``~`` from the injected HOME; relative paths start at the repo."""
    _write(home / "creds" / "config.json", {"auths": {"reg.example": _auth("tilde")}})
    _write(tmp_path / "repo" / "auth.json", {"auths": {"reg.example": _auth("relative")}})
    tilde = CredentialStore(_config(RegistryAuth(config_file="~/creds/config.json")), env=env)
    relative = CredentialStore(
        _config(RegistryAuth(auth_file="auth.json")), env=env, base_dir=tmp_path / "repo"
    )
    assert (await tilde.get("reg.example", "a/b")).username == "tilde"  # type: ignore[union-attr]
    assert (await relative.get("reg.example", "a/b")).username == "relative"  # type: ignore[union-attr]


async def test_configured_helper(env: dict[str, str], tmp_path: Path) -> None:
    """``auth.helper`` runs ``docker-credential-<helper>`` from the injected PATH."""
    _helper(tmp_path / "bin", "test", _answer("helped"))
    store = CredentialStore(_config(RegistryAuth(helper="test")), env=env)
    assert (await store.get("reg.example", "a/b")).username == "helped"  # type: ignore[union-attr]


async def test_configured_docker_hub_host(env: dict[str, str]) -> None:
    """A config entry for ``index.docker.io`` applies to ``docker.io`` references."""
    env |= {"U": "hubuser", "P": SECRET}
    store = CredentialStore(
        _config(RegistryAuth(username_env="U", password_env="P"), host="index.docker.io"), env=env
    )
    assert (await store.get("docker.io", "library/x")).username == "hubuser"  # type: ignore[union-attr]


async def test_no_credentials(env: dict[str, str]) -> None:
    """Nothing anywhere means anonymous (None), not an error."""
    assert await CredentialStore(Config(), env=env).get("reg.example", "ns/app") is None


async def test_invalid_json_file(env: dict[str, str], home: Path) -> None:
    """A credentials file that is not JSON is an input error naming the file."""
    path = home / ".docker" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json " + SECRET)
    with pytest.raises(InputError, match=r"config\.json") as caught:
        await CredentialStore(Config(), env=env).get("reg.example", "ns/app")
    assert SECRET not in str(caught.value)


def test_describe_sources_names_paths_only(env: dict[str, str]) -> None:
    """The "where we looked" text lists paths and variable names, never values."""
    env |= {"U": "user", "P": SECRET}
    store = CredentialStore(_config(RegistryAuth(username_env="U", password_env="P")), env=env)
    assert store.describe_sources("reg.example") == "env U/P"
    assert ".docker/config.json" in CredentialStore(Config(), env=env).describe_sources("x.io")
