"""Credentials belong to the operator: a pull request cannot send them to a host it chooses.

Every case runs the real CLI (``plan``, ``reconcile``) as a process against stand-in servers on
loopback that record every ``Authorization`` header. The "attacker" listens on 127.0.0.2, a host
other than the registry's 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.gitremote import ConfigRepo, make_config_repo

ROOT = Path(__file__).resolve().parents[2]
SECRET_USER, SECRET = "ci", "ci-deploy-token-value"
OPERATOR_USER, OPERATOR_PASSWORD = "operator", "operator-password"


class Recorder:
    """What a stand-in saw: (path, Authorization or None) per request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def add(self, path: str, authorization: str | None) -> None:
        with self.lock:
            self.seen.append((path, authorization))

    @property
    def authorizations(self) -> list[str]:
        with self.lock:
            return [a for _, a in self.seen if a is not None]


Answer = Callable[[BaseHTTPRequestHandler], tuple[int, list[tuple[str, str]]]]


def _handler(recorder: Recorder, answer: Answer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            recorder.add(self.path, self.headers.get("Authorization"))
            code, headers = answer(self)
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def standin(address: str, answer: Answer) -> Iterator[tuple[str, Recorder]]:
    """Serve ``answer`` on ``address`` port 0; yields (``host:port``, its recorder)."""
    recorder = Recorder()
    server = ThreadingHTTPServer((address, 0), _handler(recorder, answer))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"{address}:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def basic_challenge(_: BaseHTTPRequestHandler) -> tuple[int, list[tuple[str, str]]]:
    """Ask for credentials, always: whatever a client has, it would send now."""
    return 401, [("WWW-Authenticate", 'Basic realm="registry"')]


def _stream(reference: str) -> str:
    return (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\nmetadata:\n  name: app\n"
        f"spec:\n  tags:\n  - name: v1\n    from:\n      kind: DockerImage\n"
        f"      name: {reference}\n"
    )


def _repo(tmp_path: Path, config: str, reference: str) -> ConfigRepo:
    return make_config_repo(
        tmp_path / "repo",
        {"streamlock.yaml": config, "streams/shop/app.yaml": _stream(reference)},
    )


def _helper(directory: Path, name: str) -> Path:
    """``docker-credential-<name>`` that hands the CI secret to any server it is asked about."""
    directory.mkdir(parents=True, exist_ok=True)
    helper = directory / f"docker-credential-{name}"
    helper.write_text(
        f'#!/bin/sh\nread server\necho \'{{"Username": "{SECRET_USER}", "Secret": "{SECRET}"}}\'\n'
    )
    helper.chmod(0o755)
    return directory


def _run(
    command: str, repo: ConfigRepo, home: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "CI_DEPLOY_TOKEN": SECRET,
        "CI_USER": SECRET_USER,
        "OP_USER": OPERATOR_USER,
        "OP_PASS": OPERATOR_PASSWORD,
        "GIT_CONFIG_NOSYSTEM": "1",
        **(env or {}),
    }
    args = [sys.executable, "-m", "reconciler", *extra, command, "--repo", str(repo.work)]
    if command == "reconcile":
        args.append("--no-push")
    return subprocess.run(args, env=base, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _repo_auth(kind: str, attacker: str, home: Path) -> str:
    """A ``registries`` entry for the attacker's host naming one kind of credential source."""
    if kind == "env":
        auth = "{env: {username: CI_USER, password: CI_DEPLOY_TOKEN}}"
    elif kind == "helper":
        _helper(home / "bin", "ci")
        auth = "{helper: ci}"
    else:  # a file outside discovery whose credsStore answers for any server
        _helper(home / "bin", "store")
        path = home / "ci" / "config.json"  # not on the discovery path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"credsStore": "store"}')
        auth = f"{{{kind}: {path}}}"
    return f"registries:\n- host: '{attacker}'\n  auth: {auth}\n"


@pytest.mark.parametrize("command", ["plan", "reconcile"])
@pytest.mark.parametrize("kind", ["env", "helper", "configFile", "authFile"])
def test_repo_auth_sends_nothing_to_its_host(
    tmp_path: Path, home: Path, kind: str, command: str
) -> None:
    """The repository's ``auth:`` for a host it names sends that host no credential."""
    with standin("127.0.0.2", basic_challenge) as (attacker, recorder):
        config = _repo_auth(kind, attacker, home)
        repo = _repo(tmp_path, config, f"{attacker}/shop/app:1")
        path = f"{home / 'bin'}:{os.environ.get('PATH', os.defpath)}"
        result = _run(command, repo, home, env={"PATH": path})
    assert recorder.seen, result.stderr
    assert recorder.authorizations == []
    assert "auth: in streamlock.yaml ignored" in result.stderr


def test_trusted_repo_auth_is_used(tmp_path: Path, home: Path) -> None:
    """With ``STREAMLOCK_TRUST_REPO_AUTH=1`` the repository's ``auth:`` counts."""
    with standin("127.0.0.2", basic_challenge) as (registry, recorder):
        config = _repo_auth("env", registry, home)
        repo = _repo(tmp_path, config, f"{registry}/shop/app:1")
        _run("plan", repo, home, env={"STREAMLOCK_TRUST_REPO_AUTH": "1"})
    expected = base64.b64encode(f"{SECRET_USER}:{SECRET}".encode()).decode()
    assert recorder.authorizations[:1] == [f"Basic {expected}"]


def _operator_file(tmp_path: Path, host: str) -> Path:
    path = tmp_path / "operator" / "auth.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    auth = "{env: {username: OP_USER, password: OP_PASS}}"
    path.write_text(f"registries:\n- host: '{host}'\n  auth: {auth}\n")
    return path


def _operator_basic() -> str:
    raw = f"{OPERATOR_USER}:{OPERATOR_PASSWORD}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize("how", ["option", "env"])
def test_operator_auth_config_reaches_its_host(tmp_path: Path, home: Path, how: str) -> None:
    """``--auth-config`` / ``$STREAMLOCK_AUTH_CONFIG`` credentials go to the host they name."""
    with standin("127.0.0.2", basic_challenge) as (registry, recorder):
        repo = _repo(tmp_path, "{}\n", f"{registry}/shop/app:1")
        path = _operator_file(tmp_path, registry)
        if how == "option":
            _run("plan", repo, home, "--auth-config", str(path))
        else:
            _run("plan", repo, home, env={"STREAMLOCK_AUTH_CONFIG": str(path)})
    assert recorder.authorizations[:1] == [_operator_basic()]


def test_operator_auth_beats_repo_auth(tmp_path: Path, home: Path) -> None:
    """Even trusted, the repository's entry for a host loses to the operator's entry for it."""
    with standin("127.0.0.2", basic_challenge) as (registry, recorder):
        repo = _repo(tmp_path, _repo_auth("env", registry, home), f"{registry}/shop/app:1")
        path = _operator_file(tmp_path, registry)
        env = {"STREAMLOCK_TRUST_REPO_AUTH": "1", "STREAMLOCK_AUTH_CONFIG": str(path)}
        _run("plan", repo, home, env=env)
    assert set(recorder.authorizations) == {_operator_basic()}


def test_malformed_auth_config_is_located(tmp_path: Path, home: Path) -> None:
    """A malformed operator auth file stops the command with a located message, no traceback."""
    repo = _repo(tmp_path, "{}\n", "127.0.0.2:1/shop/app:1")
    path = tmp_path / "auth.yaml"
    path.write_text("registries:\n- host: quay.io\n  mirrors: [x.example]\n")
    result = _run("plan", repo, home, "--auth-config", str(path))
    assert result.returncode == 1
    assert f"{path}:3:3: registries[0].mirrors" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_realm_on_another_host_gets_no_credential(tmp_path: Path, home: Path) -> None:
    """A registry naming a token realm on another host: the realm gets no credential."""
    with standin("127.0.0.2", lambda _: (401, [])) as (realm_host, realm):

        def bearer(_: BaseHTTPRequestHandler) -> tuple[int, list[tuple[str, str]]]:
            challenge = f'Bearer realm="http://{realm_host}/token",service="registry"'
            return 401, [("WWW-Authenticate", challenge)]

        with standin("127.0.0.1", bearer) as (registry, _):
            repo = _repo(tmp_path, "{}\n", f"{registry}/shop/app:1")
            path = _operator_file(tmp_path, registry)
            _run("plan", repo, home, "--auth-config", str(path))
    assert realm.seen
    assert realm.authorizations == []


def test_token_realm_with_its_own_entry_gets_its_own_credential(tmp_path: Path, home: Path) -> None:
    """A realm host with its own operator entry receives that entry's credential only."""
    with standin("127.0.0.2", lambda _: (401, [])) as (realm_host, realm):

        def bearer(_: BaseHTTPRequestHandler) -> tuple[int, list[tuple[str, str]]]:
            challenge = f'Bearer realm="http://{realm_host}/token",service="registry"'
            return 401, [("WWW-Authenticate", challenge)]

        with standin("127.0.0.1", bearer) as (registry, _):
            repo = _repo(tmp_path, "{}\n", f"{registry}/shop/app:1")
            path = tmp_path / "auth.yaml"
            path.write_text(
                f"registries:\n- host: '{registry}'\n"
                "  auth: {env: {username: CI_USER, password: CI_DEPLOY_TOKEN}}\n"
                f"- host: '{realm_host}'\n"
                "  auth: {env: {username: OP_USER, password: OP_PASS}}\n"
            )
            _run("plan", repo, home, "--auth-config", str(path))
    assert realm.authorizations == [_operator_basic()]


def test_redirect_to_another_host_gets_no_credential(tmp_path: Path, home: Path) -> None:
    """A registry redirecting to another host: the target gets no ``Authorization``."""
    with standin("127.0.0.2", lambda _: (404, [])) as (target, recorder):

        def redirecting(request: BaseHTTPRequestHandler) -> tuple[int, list[tuple[str, str]]]:
            if request.headers.get("Authorization") is None:
                return basic_challenge(request)
            return 307, [("Location", f"http://{target}{request.path}")]

        with standin("127.0.0.1", redirecting) as (registry, registry_seen):
            repo = _repo(tmp_path, "{}\n", f"{registry}/shop/app:1")
            _run("plan", repo, home, "--auth-config", str(_operator_file(tmp_path, registry)))
    assert registry_seen.authorizations  # the registry itself was answered with credentials
    assert recorder.seen
    assert recorder.authorizations == []


def test_mirror_gets_no_credential_of_its_registry(tmp_path: Path, home: Path) -> None:
    """A mirror the repository names gets none of the credential stored for its registry."""
    with (
        standin("127.0.0.2", basic_challenge) as (mirror, recorder),
        standin("127.0.0.1", basic_challenge) as (registry, registry_seen),
    ):
        config = f"registries:\n- host: '{registry}'\n  mirrors: ['{mirror}']\n"
        repo = _repo(tmp_path, config, f"{registry}/shop/app:1")
        _run("plan", repo, home, "--auth-config", str(_operator_file(tmp_path, registry)))
    assert registry_seen.authorizations
    assert recorder.seen
    assert recorder.authorizations == []


def test_daemon_sends_repo_auth_nowhere(tmp_path: Path, home: Path) -> None:
    """``streamlock run`` builds its registry client with the operator's credentials only."""
    from tests.fixtures.daemon import DaemonProcess, wait_for

    with standin("127.0.0.2", basic_challenge) as (attacker, recorder):
        repo = _repo(tmp_path, _repo_auth("env", attacker, home), f"{attacker}/shop/app:1")
        daemon = DaemonProcess(
            repo.remote,
            tmp_path / "workdir",
            env={"HOME": str(home), "CI_DEPLOY_TOKEN": SECRET, "CI_USER": SECRET_USER},
        )
        try:
            daemon.start()
            wait_for(lambda: bool(recorder.seen), 30)
        finally:
            daemon.close()
    assert recorder.authorizations == []
