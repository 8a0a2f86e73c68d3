"""Webhook payloads and their authentication, as pure functions of bytes and headers.

Registry hooks (CNCF distribution notification envelopes, Docker Hub, Quay, Harbor) become a
list of ``PushedImage``; a push only makes the matching tags due, the pass then asks the registry
itself, so a hook never decides a pin. Git hooks (GitHub, GitLab push events) only start a pass.
Authentication: a bearer token for registry hooks, GitHub's ``X-Hub-Signature-256`` HMAC or
GitLab's ``X-Gitlab-Token`` for Git hooks, all compared in constant time; a replayed delivery id
is recognised by ``ReplayGuard``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import InputError
from reconciler.reference import ImageReference

DISTRIBUTION_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
MAX_BODY = 1024 * 1024  # a distribution envelope is a few KB; GitHub caps pushes at 25 MB,
# but a push event for one branch with 20 commits is well under 1 MB.
REPLAY_MEMORY = 4096


@dataclass(frozen=True, slots=True)
class PushedImage:
    """A repository:tag the registry says changed (host None when the payload does not say)."""

    repository: str
    tag: str
    host: str | None = None

    def __str__(self) -> str:
        return f"{self.host + '/' if self.host else ''}{self.repository}:{self.tag}"


# --- authentication ----------------------------------------------------------------------------
def bearer_ok(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` with the configured token (constant-time compare)."""
    if not token or not authorization:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def github_signature_ok(body: bytes, signature: str | None, secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC of the body>`` (GitHub's webhook signature)."""
    if not secret or not signature or not signature.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.removeprefix("sha256=").strip().lower(), expected)


def gitlab_token_ok(token: str | None, secret: str) -> bool:
    """``X-Gitlab-Token`` equals the configured secret (GitLab sends it as given)."""
    if not secret or not token:
        return False
    return hmac.compare_digest(token.encode(), secret.encode())


class ReplayGuard:
    """Remembers the last ``size`` delivery ids; a second delivery of one is a replay.

    A bounded memory: a replay older than that many deliveries gets through, and then only
    starts a pass, which is harmless (the signature still had to be valid).
    """

    def __init__(self, size: int = REPLAY_MEMORY) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, delivery: str) -> bool:
        if delivery in self._seen:
            self._seen.move_to_end(delivery)
            return False
        self._seen[delivery] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


# --- Git push events ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GitPush:
    """A push event: which ref moved, and the id of this delivery (for replay protection)."""

    ref: str | None
    delivery: str | None


def parse_git_push(body: bytes, headers: Mapping[str, str]) -> GitPush | None:
    """A GitHub or GitLab push event; None for other events (ping, issues, …), which are ignored.

    Headers must be given with lower-case names.
    """
    event = headers.get("x-github-event") or headers.get("x-gitlab-event") or ""
    if event.lower() not in ("push", "push hook"):
        return None
    payload = _json(body)
    ref = payload.get("ref") if isinstance(payload, dict) else None
    delivery = (
        headers.get("x-github-delivery")
        or headers.get("x-gitlab-event-uuid")
        or headers.get("x-gitlab-webhook-uuid")
    )
    return GitPush(ref if isinstance(ref, str) else None, delivery)


# --- registry events ----------------------------------------------------------------------------
def parse_registry_payload(body: bytes) -> list[PushedImage]:
    """Pushed tags from any supported sender, recognised by the payload's shape."""
    payload = _json(body)
    if isinstance(payload, dict):
        if isinstance(payload.get("events"), list):
            return distribution_events(payload)
        if isinstance(payload.get("push_data"), dict):
            return docker_hub(payload)
        if "updated_tags" in payload and "docker_url" in payload:
            return quay(payload)
        if isinstance(payload.get("event_data"), dict):
            return harbor(payload)
    raise InputError("unrecognised registry notification payload")


def distribution_events(envelope: Mapping[str, Any]) -> list[PushedImage]:
    """CNCF distribution: ``{"events": [{action, target: {repository, tag, url}, request}]}``.

    Only manifest pushes by tag count: a blob push or a manifest pushed by digest (the platform
    manifests of an index, pushed before the index's tag) changes no tag.
    """
    found = []
    for event in envelope.get("events", []):
        if not isinstance(event, dict) or event.get("action") != "push":
            continue
        target = event.get("target") or {}
        repository, tag = target.get("repository"), target.get("tag")
        if not isinstance(repository, str) or not isinstance(tag, str) or not tag:
            continue
        request = event.get("request") or {}
        host = request.get("host") if isinstance(request.get("host"), str) else None
        found.append(PushedImage(repository, tag, host))
    return _unique(found)


def docker_hub(payload: Mapping[str, Any]) -> list[PushedImage]:
    """Docker Hub: ``{"push_data": {"tag"}, "repository": {"repo_name": "ns/name"}}``."""
    tag = payload["push_data"].get("tag")
    name = (payload.get("repository") or {}).get("repo_name")
    if not isinstance(tag, str) or not isinstance(name, str):
        return []
    repository = name if "/" in name else f"library/{name}"
    return [PushedImage(repository, tag, "docker.io")]


def quay(payload: Mapping[str, Any]) -> list[PushedImage]:
    """Quay repository push: ``{"docker_url": "quay.io/ns/name", "updated_tags": [...]}``."""
    url, tags = payload.get("docker_url"), payload.get("updated_tags")
    if not isinstance(url, str) or not isinstance(tags, list):
        return []
    host, _, repository = url.partition("/")
    return _unique(PushedImage(repository, t, host) for t in tags if isinstance(t, str) and t)


def harbor(payload: Mapping[str, Any]) -> list[PushedImage]:
    """Harbor ``PUSH_ARTIFACT``: each ``event_data.resources[].resource_url``."""
    if payload.get("type") not in ("PUSH_ARTIFACT", "pushImage"):
        return []
    found = []
    for resource in payload["event_data"].get("resources") or []:
        url = resource.get("resource_url") if isinstance(resource, dict) else None
        if not isinstance(url, str):
            continue
        try:
            ref = ImageReference.parse(url)
        except InputError:
            continue
        tag = ref.tag or (resource.get("tag") if isinstance(resource.get("tag"), str) else None)
        if tag:
            found.append(PushedImage(ref.path, tag, ref.domain))
    return _unique(found)


def matches(pushed: PushedImage, source: str) -> bool:
    """Whether a tag importing ``source`` may have moved.

    Repository path and tag only: a registry names itself as it is reached (``localhost``,
    a load balancer, a mirror), so hosts are not compared. A false match costs one lookup in a
    pass; the registry, not the hook, decides the pin.
    """
    try:
        ref = ImageReference.parse(source)
    except InputError:
        return False
    if ref.tag != pushed.tag:
        return False
    return pushed.repository in (ref.repository, ref.path)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"webhook body is not JSON: {exc}") from exc


def _unique(images: Iterable[PushedImage]) -> list[PushedImage]:
    return list(dict.fromkeys(images))
