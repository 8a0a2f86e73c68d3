"""The test fixtures themselves: real registries, seeding, auth variants, TLS, fault proxy, git."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from reconciler.lockfile import loads
from tests.fixtures.demo import (
    BUMP_IMAGE,
    EXAMPLE_DIR,
    EXAMPLE_IMAGES,
    PINNED_IMAGE,
    demo,
    expected_digest,
    prepare_example_repo,
    seed_example,
)
from tests.fixtures.fault_proxy import WRONG_DIGEST
from tests.fixtures.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    Seeder,
    build_image,
    sha256,
)
from tests.fixtures.registry_server import RegistryServer, notification_endpoint
from tests.fixtures.token_server import TokenServer


def _get_manifest(client: httpx.Client, server: RegistryServer, repo: str, ref: str):
    return client.get(
        f"{server.url}/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
    )


def test_pushed_image_is_served_by_tag(registry: RegistryServer, seeder: Seeder, repo_name: str):
    """A pushed image's tag resolves to its manifest digest with the full Accept list."""
    digest = seeder.push_image(repo_name, "1.0")
    with httpx.Client(trust_env=False) as client:
        response = _get_manifest(client, registry, repo_name, "1.0")
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Type"] == OCI_MANIFEST


def test_seeding_is_deterministic():
    """The same arguments build the same manifest bytes; a salt changes them."""
    first, _, _ = build_image(labels={"a": "b"})
    again, _, _ = build_image(labels={"a": "b"})
    salted, _, _ = build_image(labels={"a": "b"}, salt="x")
    assert first == again
    assert salted != first


def test_docker_media_image_is_served_as_docker_v2(
    registry: RegistryServer, seeder: Seeder, repo_name: str
):
    """media="docker" pushes a Docker v2 manifest."""
    digest = seeder.push_image(repo_name, "d", media="docker")
    with httpx.Client(trust_env=False) as client:
        response = _get_manifest(client, registry, repo_name, "d")
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize(("media", "index_type"), [("oci", OCI_INDEX), ("docker", DOCKER_LIST)])
def test_index_lists_both_platforms(
    registry: RegistryServer, seeder: Seeder, repo_name: str, media: str, index_type: str
):
    """An index tag serves the index, whose children are the pushed platform manifests."""
    index, platforms = seeder.push_index(repo_name, f"multi-{media}", media=media)
    with httpx.Client(trust_env=False) as client:
        response = _get_manifest(client, registry, repo_name, f"multi-{media}")
    assert response.headers["Docker-Content-Digest"] == index
    assert response.headers["Content-Type"] == index_type
    children = {
        "/".join(
            filter(
                None,
                (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")),
            )
        ): m["digest"]
        for m in response.json()["manifests"]
    }
    assert children == platforms
    assert set(platforms) == {"linux/amd64", "linux/arm64/v8"}


def test_bulk_tags_are_distinct_manifests(seeder: Seeder, repo_name: str):
    """Bulk seeding gives every tag its own manifest digest."""
    tags = [f"v{i}" for i in range(20)]
    digests = seeder.push_tags_bulk(repo_name, tags)
    assert len(set(digests.values())) == 20
    assert seeder.digest(repo_name, "v7") == digests["v7"]


def test_deleted_manifest_is_unknown(seeder: Seeder, repo_name: str):
    """Deleting a tag's manifest makes the tag 404."""
    seeder.push_image(repo_name, "gone")
    seeder.delete_tag_manifest(repo_name, "gone")
    assert seeder.digest(repo_name, "gone") is None


def test_htpasswd_rejects_anonymous(registry_htpasswd: RegistryServer):
    """The htpasswd registry answers 401 with a Basic challenge to anonymous clients."""
    response = httpx.get(f"{registry_htpasswd.url}/v2/", trust_env=False)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_htpasswd_accepts_user(registry_htpasswd: RegistryServer, make_seeder, repo_name: str):
    """The configured user can push and read back."""
    assert registry_htpasswd.auth is not None
    seeder = make_seeder(registry_htpasswd)
    digest = seeder.push_image(repo_name, "1")
    response = httpx.get(
        f"{registry_htpasswd.url}/v2/{repo_name}/manifests/1",
        headers={"Accept": MANIFEST_ACCEPT},
        auth=registry_htpasswd.auth,
        trust_env=False,
    )
    assert response.headers["Docker-Content-Digest"] == digest


def test_token_registry_challenges_with_bearer_realm(
    registry_token: RegistryServer, token_server: TokenServer
):
    """Anonymous requests get 401 with a Bearer challenge naming the token server's realm."""
    response = httpx.get(f"{registry_token.url}/v2/", trust_env=False)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{token_server.realm}"' in challenge


def _token(token_server: TokenServer, scope: str, auth: tuple[str, str] | None) -> httpx.Response:
    return httpx.get(
        token_server.realm,
        params={"service": token_server.service, "scope": scope},
        auth=auth,
        trust_env=False,
    )


def test_token_is_accepted_by_registry(
    registry_token: RegistryServer, token_server: TokenServer, make_seeder, repo_name: str
):
    """A token from the token server opens the repository and is counted."""
    digest = make_seeder(registry_token).push_image(repo_name, "1")
    issued = token_server.issued_count
    body = _token(token_server, f"repository:{repo_name}:pull", registry_token.auth).json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    response = httpx.head(
        f"{registry_token.url}/v2/{repo_name}/manifests/1",
        headers={"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {body['token']}"},
        trust_env=False,
    )
    assert response.headers["Docker-Content-Digest"] == digest
    assert token_server.issued_count == issued + 1


def test_expired_token_is_rejected(
    registry_token: RegistryServer, token_server: TokenServer, make_seeder, repo_name: str
):
    """With issue_expired the registry refuses the token (to test refresh on 401)."""
    make_seeder(registry_token).push_image(repo_name, "1")
    token_server.issue_expired = True
    body = _token(token_server, f"repository:{repo_name}:pull", registry_token.auth).json()
    response = httpx.head(
        f"{registry_token.url}/v2/{repo_name}/manifests/1",
        headers={"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {body['token']}"},
        trust_env=False,
    )
    assert response.status_code == 401


def test_token_server_refuses_anonymous_by_default(token_server: TokenServer):
    """Anonymous token requests are refused unless anonymous_pull is on."""
    assert _token(token_server, "repository:x/y:pull", None).status_code == 401
    token_server.anonymous_pull = True
    assert _token(token_server, "repository:x/y:pull", None).status_code == 200


def test_token_server_refuses_wrong_password(token_server: TokenServer):
    """A wrong password gets 401 and no token."""
    assert _token(token_server, "repository:x/y:pull", ("bob", "nope")).status_code == 401
    assert token_server.issued_count == 0


def test_tls_registry_with_ca(registry_tls: RegistryServer, make_seeder, repo_name: str):
    """The TLS registry serves https verified by its CA file."""
    assert registry_tls.url.startswith("https://127.0.0.1:")
    assert registry_tls.ca_file is not None
    digest = make_seeder(registry_tls).push_image(repo_name, "1")
    with httpx.Client(verify=registry_tls.verify, trust_env=False) as client:
        response = _get_manifest(client, registry_tls, repo_name, "1")
    assert response.headers["Docker-Content-Digest"] == digest


def test_tls_registry_rejects_unknown_ca(registry_tls: RegistryServer):
    """Without the CA the certificate does not verify."""
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{registry_tls.url}/v2/", trust_env=False)


def test_missing_binary_is_an_error(tmp_path):
    """A missing registry binary fails loudly with an install hint (never a skip)."""
    server = RegistryServer(tmp_path, binary=str(tmp_path / "no-such-registry"))
    with pytest.raises(RuntimeError, match="apt-get install"):
        server.start()


# --- fault proxy -------------------------------------------------------------------------------
@pytest.fixture
def proxied(registry: RegistryServer, fault_proxy, seeder: Seeder, repo_name: str):
    """A fault proxy in front of the plain registry, with one image at tag ``1``."""
    digest = seeder.push_image(repo_name, "1")
    proxy = fault_proxy(registry)
    with httpx.Client(base_url=proxy.url, trust_env=False, timeout=10) as client:
        yield proxy, client, digest


def _head(client: httpx.Client, repo: str, ref: str = "1") -> httpx.Response:
    return client.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT})


def test_proxy_forwards_pushes_and_records(registry, fault_proxy, repo_name: str):
    """Pushing through the proxy works (upload Location points back at it) and is recorded."""
    proxy = fault_proxy(registry)
    with Seeder(proxy.url) as via_proxy:
        digest = via_proxy.push_image(repo_name, "p")
    assert proxy.count("PUT", r"/blobs/uploads/") == 2
    assert proxy.count("PUT", r"/manifests/p$") == 1
    assert all(r.status is not None and r.status < 500 for r in proxy.requests)
    with Seeder(registry.url) as direct:
        assert direct.digest(repo_name, "p") == digest


@pytest.mark.parametrize("status", [429, 500, 503])
def test_proxy_injects_status_then_forwards(proxied, repo_name: str, status: int):
    """A status fault answers `times` matching requests, then the registry answers."""
    proxy, client, _ = proxied
    proxy.fail(status, method="HEAD", path=r"/manifests/", times=2)
    assert [_head(client, repo_name).status_code for _ in range(3)] == [status, status, 200]
    assert [r.fault for r in proxy.requests] == ["status", "status", None]
    assert proxy.pending_faults() == []


def test_proxy_retry_after_seconds(proxied, repo_name: str):
    """rate_limit sends 429 with Retry-After in seconds."""
    proxy, client, _ = proxied
    proxy.rate_limit(7)
    response = _head(client, repo_name)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")


def test_proxy_retry_after_http_date(proxied, repo_name: str):
    """rate_limit with a datetime sends Retry-After as an HTTP date."""
    proxy, client, _ = proxied
    when = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    proxy.rate_limit(when)
    assert _head(client, repo_name).headers["Retry-After"] == "Wed, 02 Jan 2030 03:04:05 GMT"


def test_proxy_fault_matches_method_and_path(proxied, repo_name: str):
    """A fault for GET on blobs leaves a manifest HEAD alone."""
    proxy, client, _ = proxied
    proxy.fail(503, method="GET", path=r"/blobs/")
    assert _head(client, repo_name).status_code == 200
    assert len(proxy.pending_faults()) == 1


def test_proxy_reset_closes_without_response(proxied, repo_name: str):
    """A reset fault drops the connection; the next request is forwarded."""
    proxy, client, digest = proxied
    proxy.reset(path=r"/manifests/")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        _head(client, repo_name)
    assert _head(client, repo_name).headers["Docker-Content-Digest"] == digest
    assert [r.status for r in proxy.requests] == [None, 200]


def test_proxy_slow_response_trips_client_timeout(proxied, repo_name: str):
    """A slow fault delays the response past a short client timeout."""
    proxy, client, _ = proxied
    proxy.slow(5.0)
    with pytest.raises(httpx.ReadTimeout):
        client.head(
            f"/v2/{repo_name}/manifests/1",
            headers={"Accept": MANIFEST_ACCEPT},
            timeout=0.3,
        )


def test_proxy_slow_response_is_forwarded(proxied, repo_name: str):
    """A slow fault still forwards the registry's answer."""
    proxy, client, digest = proxied
    proxy.slow(0.05)
    assert _head(client, repo_name).headers["Docker-Content-Digest"] == digest
    assert proxy.requests[-1].fault == "slow"


def test_proxy_rewrites_digest_header(proxied, repo_name: str):
    """A bad-digest fault swaps Docker-Content-Digest but keeps the body."""
    proxy, client, digest = proxied
    proxy.bad_digest(method="GET")
    response = client.get(f"/v2/{repo_name}/manifests/1", headers={"Accept": MANIFEST_ACCEPT})
    assert response.headers["Docker-Content-Digest"] == WRONG_DIGEST
    assert sha256(response.content) == digest
    assert _head(client, repo_name).headers["Docker-Content-Digest"] == digest


async def test_proxy_serves_async_clients_with_keepalive(registry, fault_proxy, seeder, repo_name):
    """An async client reuses one connection through the proxy across faults and forwards."""
    digest = seeder.push_image(repo_name, "1")
    proxy = fault_proxy(registry)
    proxy.fail(503, times=1)
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=proxy.url, trust_env=False, limits=limits) as client:
        codes = []
        for _ in range(3):
            response = await client.head(
                f"/v2/{repo_name}/manifests/1", headers={"Accept": MANIFEST_ACCEPT}
            )
            codes.append(response.status_code)
    assert codes == [503, 200, 200]
    assert response.headers["Docker-Content-Digest"] == digest


# --- git remote --------------------------------------------------------------------------------
def test_config_repo_pushes_initial_files(config_repo):
    """The working clone's files are committed and pushed to the bare remote's main."""
    repo = config_repo({"streamlock.yaml": "apiVersion: streamlock/v1\n", "a/b.txt": b"x"})
    assert repo.read_remote("streamlock.yaml") == "apiVersion: streamlock/v1\n"
    assert repo.read_remote("a/b.txt") == "x"
    assert repo.read_remote("missing.txt") is None
    assert repo.remote_head() == repo.head()


def test_config_repo_clone_sees_pushed_commits(config_repo, tmp_path):
    """A second clone sees commits pushed from the first; log reads the remote newest first."""
    repo = config_repo({"f.txt": "1\n"})
    repo.commit({"f.txt": "2\n"}, "Second\n\nStreamlock-Tag: shop/app:prod")
    other = repo.clone(tmp_path / "other")
    assert (other / "f.txt").read_text() == "2\n"
    log = repo.log(path="f.txt", n=1)
    assert log[0]["subject"] == "Second"
    assert "Streamlock-Tag: shop/app:prod" in log[0]["message"]
    assert repo.commit_count() == 2


def test_git_ignores_machine_config(config_repo):
    """git runs with the session's own identity and no system config."""
    repo = config_repo({"f.txt": "1\n"})
    assert repo.git("config", "--global", "user.email").strip() == "test@streamlock.invalid"
    assert os.environ["GIT_CONFIG_NOSYSTEM"] == "1"


# --- the example repository --------------------------------------------------------------------
def test_example_pins_the_digest_seeding_produces():
    """streams/shop/app.yaml pins prod to the digest the demo's seeding gives shop/app:1.0."""
    text = (EXAMPLE_DIR / "streams/shop/app.yaml").read_text()
    assert f"name: app@{expected_digest(PINNED_IMAGE)}" in text


def test_seed_example_serves_expected_digests(registry: RegistryServer, seeder: Seeder):
    """Seeding the example pushes every image, the pinned one at its precomputed digest."""
    digests = seed_example(seeder)
    assert set(digests) == {f"{i.repo}:{i.tag}" for i in EXAMPLE_IMAGES}
    pinned = f"{PINNED_IMAGE.repo}:{PINNED_IMAGE.tag}"
    assert digests[pinned] == expected_digest(PINNED_IMAGE)
    assert seeder.digest("shop/web-frontend", "2.4") == digests["shop/web-frontend:2.4"]


def test_bump_image_changes_the_tag():
    """The demo's second image for shop/app:1.1 has a different digest than the first."""
    first = next(i for i in EXAMPLE_IMAGES if (i.repo, i.tag) == (BUMP_IMAGE.repo, BUMP_IMAGE.tag))
    assert expected_digest(BUMP_IMAGE) != expected_digest(first)


def test_prepare_example_repo_points_at_registry(tmp_path):
    """The prepared repo holds every example file with localhost:5000 replaced, and no locks/."""
    repo = prepare_example_repo(tmp_path / "config", "127.0.0.1:40999")
    names = repo.git("ls-files").split()
    assert "streamlock.yaml" in names
    assert "streams/shop/app.yaml" in names
    assert not any(name.startswith("locks/") for name in names)
    for name in names:
        text = repo.read_remote(name)
        assert text is not None
        assert "localhost:5000" not in text
    assert "127.0.0.1:40999/shop/app:1.0" in (repo.read_remote("streams/shop/app.yaml") or "")


def test_example_mentions_only_the_local_registry():
    """Every registry host in the example is localhost:5000, which the demo rewrites."""
    hosts = set()
    for path in EXAMPLE_DIR.rglob("*.yaml"):
        hosts |= set(re.findall(r"\b([a-z0-9.-]+:\d+)/", path.read_text()))
    assert hosts == {"localhost:5000"}


# --- notifications -----------------------------------------------------------------------------
class _Receiver(ThreadingHTTPServer):
    """Collects notification envelopes POSTed by the registry."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[dict[str, str], dict]] = []
        self.lock = threading.Lock()

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.envelopes.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        super().__init__(("127.0.0.1", 0), Handler)


def test_registry_sends_push_notifications(tmp_path, repo_name: str):
    """A notifications endpoint receives the push event with the bearer token configured."""
    receiver = _Receiver()
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/registry"
    endpoint = notification_endpoint(url, token="hook-token")
    try:
        with RegistryServer(tmp_path, notifications=[endpoint]) as server, Seeder(server.url) as s:
            digest = s.push_image(repo_name, "n1")
            events = []
            for _ in range(500):  # up to ~10 s
                with receiver.lock:
                    events = [
                        (headers, event)
                        for headers, envelope in receiver.envelopes
                        for event in envelope["events"]
                        if event["action"] == "push" and event["target"].get("tag") == "n1"
                    ]
                if events:
                    break
                time.sleep(0.02)
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join(timeout=5)
    assert events, "no push event arrived"
    headers, event = events[0]
    assert headers["Authorization"] == "Bearer hook-token"
    assert event["target"]["repository"] == repo_name
    assert event["target"]["digest"] == digest


def test_demo_reconciles_the_example(tmp_path):
    """make demo's steps pass on example-repo: validate, lock, bump shop/app:1.1, then no-op."""
    result = demo(tmp_path / "demo")
    # README: "11 tags: 11 added, 5 consumer files rewritten; 6 commits pushed", then
    # "3 updated, 3 consumer files rewritten; 2 commits pushed".
    assert len(result.first) == 6 and len(result.bump) == 2
    listed = result.repo.git("ls-tree", "-r", "--name-only", "origin/main", "--", "locks")
    locks = [loads(result.repo.read_remote(path).encode(), path) for path in listed.split()]
    assert sum(len(lock.tags) for lock in locks) == 11
    messages = "\n".join(c["message"] for c in result.repo.log(n=len(result.bump)))
    assert messages.count("Streamlock-Tag: ") == 3
    assert "Streamlock-Tag: shop/app:1.1" in messages
    assert "Streamlock-Tag: staging/app:latest" in messages
    assert f"Streamlock-Image: {result.bump_digest}" in messages
    web = result.repo.read_remote("locks/shop/web.lock.yaml") or ""
    assert f"dockerImageReference: {result.registry_host}/shop/web@sha256:" in web  # Local
    assert "linux/arm64/v8: sha256:" in web  # PreserveOriginal


def test_demo_rewrites_the_consumers_in_the_bump_commit(tmp_path):
    """make demo: the commit moving shop/app:latest also rewrites example-repo/deploy/shop/."""
    result = demo(tmp_path / "demo")
    repo = result.repo
    bump = next(c for c in repo.log(n=len(result.bump)) if c["subject"].startswith("shop/app:"))
    files = set(repo.git("show", "--name-only", "--format=", bump["sha"]).split())
    assert files == {
        "locks/shop/app.lock.yaml",
        "deploy/shop/app.yaml",
        "deploy/shop/chart/values.yaml",
        "deploy/shop/kustomization.yaml",
    }
    pinned = f"{result.registry_host}/shop/app@{result.bump_digest}"
    assert f"image: {pinned}" in (repo.read_remote("deploy/shop/app.yaml") or "")
    containerfile = repo.read_remote("deploy/platform/Containerfile") or ""
    assert f"FROM {result.registry_host}/platform/base:3.10@sha256:" in containerfile
