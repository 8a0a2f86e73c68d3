"""Webhook payloads and their authentication (pure functions of bytes and headers)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from reconciler.daemon import hooks
from reconciler.daemon.hooks import PushedImage
from reconciler.errors import InputError


def envelope(*events: dict) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_distribution_push_by_tag_is_a_pushed_image():
    """A manifest push by tag in a distribution envelope names repository, tag and host."""
    body = envelope(
        {"action": "push", "target": {"repository": "shop/app", "tag": "1.0"},
         "request": {"host": "reg:5000"}},
    )  # fmt: skip
    assert hooks.parse_registry_payload(body) == [PushedImage("shop/app", "1.0", "reg:5000")]


def test_distribution_blob_and_digest_pushes_and_pulls_change_no_tag():
    """Blob pushes, pushes by digest and pulls are not tag pushes."""
    body = envelope(
        {"action": "push", "target": {"repository": "a", "digest": "sha256:1"}},
        {"action": "pull", "target": {"repository": "a", "tag": "1"}},
        {"action": "push", "target": {"repository": "a", "tag": ""}},
    )
    assert hooks.parse_registry_payload(body) == []


def test_docker_hub_official_image_gets_library_prefix():
    """Docker Hub's repo_name without a slash is an official image under library/."""
    body = json.dumps({"push_data": {"tag": "3"}, "repository": {"repo_name": "alpine"}})
    assert hooks.parse_registry_payload(body.encode()) == [
        PushedImage("library/alpine", "3", "docker.io")
    ]


def test_quay_lists_every_updated_tag():
    """Quay's repository push names each updated tag."""
    body = json.dumps({"docker_url": "quay.io/ns/app", "updated_tags": ["a", "b"]}).encode()
    assert hooks.parse_registry_payload(body) == [
        PushedImage("ns/app", "a", "quay.io"), PushedImage("ns/app", "b", "quay.io"),
    ]  # fmt: skip


def test_harbor_push_artifact_resources():
    """Harbor PUSH_ARTIFACT: each resource_url is host/project/repo:tag."""
    body = json.dumps({
        "type": "PUSH_ARTIFACT",
        "event_data": {"resources": [{"resource_url": "harbor.example/lib/app:2.1"}]},
    }).encode()  # fmt: skip
    assert hooks.parse_registry_payload(body) == [PushedImage("lib/app", "2.1", "harbor.example")]


def test_unknown_payload_and_non_json_are_input_errors():
    """A payload of no known shape, or not JSON at all, is refused."""
    with pytest.raises(InputError):
        hooks.parse_registry_payload(b'{"hello": 1}')
    with pytest.raises(InputError):
        hooks.parse_registry_payload(b"\xff not json")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("127.0.0.1:5000/shop/app:1.0", True),
        ("other.example/shop/app:1.0", True),
        ("127.0.0.1:5000/shop/app:1.1", False),
        ("127.0.0.1:5000/shop/web:1.0", False),
        ("not a reference", False),
    ],
)
def test_matches_compares_repository_and_tag(source, expected):
    """A push matches a source with the same repository path and tag, whatever the host."""
    assert hooks.matches(PushedImage("shop/app", "1.0", "localhost:5000"), source) is expected


def test_matches_docker_hub_short_names():
    """``alpine:3`` matches a Docker Hub push of library/alpine:3."""
    assert hooks.matches(PushedImage("library/alpine", "3", "docker.io"), "alpine:3")


def test_bearer_token_check():
    """Only ``Bearer <the token>`` passes; an empty configured token never does."""
    assert hooks.bearer_ok("Bearer s3cret", "s3cret")
    assert hooks.bearer_ok("bearer s3cret ", "s3cret")
    assert not hooks.bearer_ok("Bearer other", "s3cret")
    assert not hooks.bearer_ok("Basic s3cret", "s3cret")
    assert not hooks.bearer_ok(None, "s3cret")
    assert not hooks.bearer_ok("Bearer ", "")


def test_github_signature_check():
    """X-Hub-Signature-256 must be the HMAC-SHA256 of the exact body with the secret."""
    body = b'{"ref": "refs/heads/main"}'
    good = "sha256=" + hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert hooks.github_signature_ok(body, good, "key")
    assert not hooks.github_signature_ok(body + b" ", good, "key")
    assert not hooks.github_signature_ok(body, good, "other")
    assert not hooks.github_signature_ok(body, good.removeprefix("sha256="), "key")
    assert not hooks.github_signature_ok(body, None, "key")
    assert not hooks.github_signature_ok(body, good, "")


def test_gitlab_token_check():
    """X-Gitlab-Token must equal the secret."""
    assert hooks.gitlab_token_ok("t", "t")
    assert not hooks.gitlab_token_ok("u", "t")
    assert not hooks.gitlab_token_ok(None, "t")
    assert not hooks.gitlab_token_ok("", "")


def test_replay_guard_remembers_a_bounded_number_of_deliveries():
    """A delivery id is new once; the oldest ids are forgotten past the size."""
    guard = hooks.ReplayGuard(size=2)
    assert guard.first_time("a") and guard.first_time("b")
    assert not guard.first_time("a")
    assert guard.first_time("c")  # forgets b, the least recently seen
    assert guard.first_time("b")


def test_git_push_events_and_others():
    """GitHub and GitLab push events carry ref and delivery id; other events are None."""
    body = b'{"ref": "refs/heads/main"}'
    push = hooks.parse_git_push(body, {"x-github-event": "push", "x-github-delivery": "d1"})
    assert push == hooks.GitPush("refs/heads/main", "d1")
    lab = hooks.parse_git_push(body, {"x-gitlab-event": "Push Hook", "x-gitlab-event-uuid": "u"})
    assert lab == hooks.GitPush("refs/heads/main", "u")
    assert hooks.parse_git_push(b"{}", {"x-github-event": "ping"}) is None
