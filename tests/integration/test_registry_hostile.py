"""Hostile registry answers and references: each fails as its own tag's error, never the pass's.

Deep JSON reaches the client through the real registry where it stores what it is given (config
blobs) and through the fault proxy or a stand-in where the registry would refuse it (manifests,
error bodies, tokens, tag lists).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from reconciler import status
from reconciler.cli import cli
from reconciler.config import Config
from reconciler.errors import MalformedAnswer
from reconciler.image import Image, ImportFailure, ImportRequest
from reconciler.manifest import MAX_MANIFEST_BYTES, OCI_MANIFEST
from reconciler.registry import RegistryClient, RetryPolicy
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.gitremote import ConfigRepo
from tests.fixtures.images import Seeder, sha256
from tests.fixtures.registry_server import RegistryServer
from tests.fixtures.standin import serve

SECRET = "hunter2-s3cret"
FAST = RetryPolicy(
    attempts=3, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0, max_retry_after=0
)
DEPTH = 30_000
DEEP = b"[" * DEPTH + b"]" * DEPTH  # valid JSON, 60 KB, far deeper than any real answer
DEEP_OBJECT = b'{"tags":' * 5_000 + b"[]" + b"}" * 5_000


def client(config: Config | None = None, **kwargs: Any) -> RegistryClient:
    return RegistryClient(config or Config(), env={}, retry=FAST, **kwargs)


@pytest.fixture
def proxy(registry: RegistryServer, fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    return fault_proxy(registry)


@pytest.fixture
def tagged(proxy: FaultProxy, seeder: Seeder, repo_name: str) -> list[str]:
    """Three good tags (ok1, ok2, ok3), addressed through the proxy; seeding forgotten."""
    for tag in ("ok1", "ok2", "ok3"):
        seeder.push_image(repo_name, tag, salt=tag)
    proxy.clear_requests()
    return [f"{proxy.host}/{repo_name}:{tag}" for tag in ("ok1", "ok2", "ok3")]


async def _resolve_all(references: list[str], **kwargs: Any) -> dict[str, Any]:
    async with client(**kwargs) as registry_client:
        results = await registry_client.resolve_all([ImportRequest(r) for r in references])
    return {r: results[ImportRequest(r).key] for r in references}


def _assert_deep_refused(observation: Any) -> None:
    assert isinstance(observation, ImportFailure), observation
    assert (observation.reason, observation.transient) == (status.MALFORMED_ANSWER, False)
    assert "nested deeper than" in observation.message


# --- finding: deeply nested JSON ----------------------------------------------------------------
@pytest.mark.parametrize("config_blob", [DEEP, b"[" * 60_000], ids=["valid", "unterminated"])
async def test_deep_config_blob_fails_only_its_tag(
    proxy: FaultProxy, seeder: Seeder, repo_name: str, tagged: list[str], config_blob: bytes
) -> None:
    """A config blob of 60 KB nesting fails its tag; the other tags of the pass resolve."""
    seeder.push_with_config(repo_name, "deep", config_blob)
    deep = f"{proxy.host}/{repo_name}:deep"
    results = await _resolve_all([tagged[0], deep, *tagged[1:]])
    assert isinstance(results[deep], ImportFailure)
    assert results[deep].reason == status.MALFORMED_ANSWER
    assert all(isinstance(results[r], Image) for r in tagged)


async def test_deep_manifest_fails_only_its_tag(proxy: FaultProxy, tagged: list[str]) -> None:
    """A manifest of deep nesting (digest header matching it) fails its tag; the rest resolve."""
    proxy.rewrite(DEEP, method="GET", path=r"/manifests/ok2$", times=None)
    results = await _resolve_all(tagged)
    _assert_deep_refused(results[tagged[1]])
    assert isinstance(results[tagged[0]], Image)
    assert isinstance(results[tagged[2]], Image)


async def test_oversized_manifest_fails_only_its_tag(proxy: FaultProxy, tagged: list[str]) -> None:
    """A manifest answer over 4 MiB is that tag's MalformedAnswer, not retried; the rest resolve."""
    huge = b'{"pad": "' + b"x" * MAX_MANIFEST_BYTES + b'"}'
    proxy.respond(
        200, huge, (("Content-Type", OCI_MANIFEST),), method="GET", path=r"/manifests/ok2$"
    )
    results = await _resolve_all(tagged)
    failure = results[tagged[1]]
    assert isinstance(failure, ImportFailure), failure
    assert (failure.reason, failure.transient) == (status.MALFORMED_ANSWER, False)
    assert f"larger than {MAX_MANIFEST_BYTES} bytes" in failure.message
    assert proxy.count("GET", r"/manifests/ok2$") == 1
    assert isinstance(results[tagged[0]], Image)
    assert isinstance(results[tagged[2]], Image)


@pytest.mark.parametrize("code", [400, 403, 404])
async def test_deep_error_body_fails_only_its_tag(
    proxy: FaultProxy, tagged: list[str], code: int
) -> None:
    """An error answer with a deeply nested body is that tag's HTTP error; the rest resolve."""
    proxy.respond(
        code, DEEP, (("Content-Type", "application/json"),), path=r"/manifests/ok2$", times=None
    )
    results = await _resolve_all(tagged)
    failure = results[tagged[1]]
    assert isinstance(failure, ImportFailure)
    expected = {
        400: status.REGISTRY_UNAVAILABLE,
        403: status.UNAUTHORIZED,
        404: status.MANIFEST_UNKNOWN,
    }
    assert failure.reason == expected[code]
    assert isinstance(results[tagged[0]], Image)
    assert isinstance(results[tagged[2]], Image)


async def test_deep_config_behind_redirect_to_another_origin(
    proxy: FaultProxy, seeder: Seeder, repo_name: str, tagged: list[str]
) -> None:
    """A deep config blob served after a redirect to another origin fails only its tag."""
    config_digest = sha256(DEEP)
    seeder.push_with_config(repo_name, "deep", DEEP)
    port = proxy.host.rpartition(":")[2]
    location = f"http://localhost:{port}/v2/{repo_name}/blobs/{config_digest}"
    proxy.respond(307, headers=(("Location", location),), path=f"/blobs/{config_digest}", times=1)
    deep = f"{proxy.host}/{repo_name}:deep"
    results = await _resolve_all([deep, *tagged])
    _assert_deep_refused(results[deep])
    assert proxy.count("GET", f"/blobs/{config_digest}") == 2  # the redirect was followed
    assert all(isinstance(results[r], Image) for r in tagged)


class _DeepToken(BaseHTTPRequestHandler):
    """A registry whose token server answers ``answer`` (deeply nested JSON unless set)."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]] = []
    answer: ClassVar[bytes] = DEEP_OBJECT

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        host = self.headers["Host"]
        if self.path.startswith("/token"):
            self._answer(200, type(self).answer)
        else:
            self._answer(401, b"{}", ("WWW-Authenticate", f'Bearer realm="http://{host}/token"'))

    def do_HEAD(self) -> None:
        self.do_GET()

    def _answer(self, code: int, body: bytes, *header: tuple[str, str]) -> None:
        self.send_response(code)
        for name, value in header:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def deep_token() -> Iterator[str]:
    _DeepToken.seen = []
    _DeepToken.answer = DEEP_OBJECT
    with serve(_DeepToken) as host:
        yield host


async def test_deep_token_answer_fails_only_its_tag(deep_token: str, tagged: list[str]) -> None:
    """A token server answering deeply nested JSON is a MalformedAnswer of that registry's tags."""
    theirs = f"{deep_token}/shop/app:1"
    results = await _resolve_all([theirs, *tagged])
    _assert_deep_refused(results[theirs])
    assert all(isinstance(results[r], Image) for r in tagged)


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (b"token please", "is not JSON"),
        (b'["t"]', "is not a token answer"),
        (b'{"token": "t", "expires_in": "soon"}', "is not a token answer"),
        (b'{"token": 5}', "names no token"),
        (b'{"expires_in": 300}', "names no token"),
    ],
    ids=["not-json", "not-an-object", "bad-expiry", "token-not-text", "no-token"],
)
async def test_unreadable_token_answer_is_malformed(
    deep_token: str, answer: bytes, complaint: str
) -> None:
    """A token answer that is not a token's JSON is a permanent MalformedAnswer saying why."""
    _DeepToken.answer = answer
    failure = (await _resolve_all([f"{deep_token}/shop/app:1"]))[f"{deep_token}/shop/app:1"]
    assert isinstance(failure, ImportFailure), failure
    assert (failure.reason, failure.transient) == (status.MALFORMED_ANSWER, False)
    assert complaint in failure.message


async def test_deep_tag_list_is_a_registry_error(proxy: FaultProxy, repo_name: str) -> None:
    """A tag list of deep nesting is a MalformedAnswer, not a RecursionError."""
    proxy.respond(200, DEEP_OBJECT, (("Content-Type", "application/json"),), path="/tags/list")
    async with client() as registry_client:
        with pytest.raises(MalformedAnswer, match="nested deeper than"):
            await registry_client.list_tags(f"{proxy.host}/{repo_name}")


# --- finding: tag-list pagination ---------------------------------------------------------------
def _page(names: list[str], link: str | None = None) -> dict[str, Any]:
    headers = [("Content-Type", "application/json")]
    if link is not None:
        headers.append(("Link", f'<{link}>; rel="next"'))
    body = json.dumps({"name": "x", "tags": names}).encode()
    return {"body": body, "headers": tuple(headers)}


async def test_large_tag_page_is_listed(proxy: FaultProxy, repo_name: str) -> None:
    """A 150 KB page of 10,000 tags is a tag list, not a manifest over its size limit."""
    names = [f"v1.0.{n}-build.{n:06d}" for n in range(10_000)]
    page = _page(names)
    assert len(page["body"]) > 150_000
    proxy.respond(200, path="/tags/list", **page)
    async with client() as registry_client:
        assert await registry_client.list_tags(f"{proxy.host}/{repo_name}") == names


async def test_tag_link_to_another_host_is_an_error(proxy: FaultProxy, repo_name: str) -> None:
    """A ``Link`` to another host fails the listing instead of returning the first page only."""
    port = proxy.host.rpartition(":")[2]
    elsewhere = f"http://localhost:{port}/v2/{repo_name}/tags/list?last=a"
    proxy.respond(200, path="/tags/list", **_page(["a"], elsewhere))
    async with client() as registry_client:
        with pytest.raises(MalformedAnswer, match="another origin"):
            await registry_client.list_tags(f"{proxy.host}/{repo_name}")
    assert proxy.count() == 1


async def test_tag_link_loop_is_an_error_at_once(proxy: FaultProxy, repo_name: str) -> None:
    """Pages that link back to an earlier page fail as a loop on the first repeat."""
    first = f"/v2/{repo_name}/tags/list?n=100"
    second = f"/v2/{repo_name}/tags/list?n=100&last=a"
    proxy.respond(200, path="/tags/list", times=1, **_page(["a"], second))
    proxy.respond(200, path="/tags/list", times=None, **_page(["b"], first))
    async with client() as registry_client:
        with pytest.raises(MalformedAnswer, match="loop"):
            await registry_client.list_tags(f"{proxy.host}/{repo_name}")
    assert proxy.count() == 2


# --- finding: userinfo in a reference -----------------------------------------------------------
@pytest.mark.parametrize("command", [["validate"], ["plan"], ["plan", "-o", "json"]])
def test_userinfo_never_in_cli_output(
    config_repo: Callable[..., ConfigRepo], command: list[str]
) -> None:
    """A reference with user:password@ is reported by validate and plan without the password."""
    stream = (
        "apiVersion: image.openshift.io/v1\nkind: ImageStream\n"
        "metadata: {name: app, namespace: shop}\nspec:\n  tags:\n  - name: '1'\n"
        f"    from: {{kind: DockerImage, name: 'alice:{SECRET}@registry.example.com/shop/app:1'}}\n"
    )
    repo = config_repo({"streams/shop/app.yaml": stream})
    result = CliRunner().invoke(cli, [*command, "--repo", str(repo.work)])
    assert result.exit_code == 1
    assert "credentials" in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr


async def test_userinfo_reference_is_a_failure_without_the_password() -> None:
    """Resolving a reference with userinfo is an InvalidSpec failure that does not echo it."""
    async with client() as registry_client:
        failure = await registry_client.resolve(ImportRequest(f"u:{SECRET}@127.0.0.1:9/a:1"))
    assert isinstance(failure, ImportFailure)
    assert failure.reason == status.INVALID_SPEC
    assert SECRET not in failure.message
