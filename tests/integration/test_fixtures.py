"""The test fixtures themselves: real registries, seeding, auth variants, TLS, fault proxy, git."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    Seeder,
    build_image,
)
from tests.fixtures.registry_server import RegistryServer
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
