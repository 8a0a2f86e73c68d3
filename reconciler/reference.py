"""Container image references, parsed by distribution's grammar.

The reference keeps what the user wrote (``str()`` round-trips); Docker Hub normalisation
(``python`` -> ``docker.io/library/python`` served by ``registry-1.docker.io``) lives only in the
``registry_host`` / ``repository`` properties, used when talking to a registry.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from reconciler.errors import InputError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}"

DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
TAG_RE = re.compile(rf"^{_TAG}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_ANY_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_TRAILING_DIGEST = re.compile(rf"@{_DIGEST}$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """``text`` with any userinfo (``user:password@``) replaced, fit for messages and logs.

    Everything before the last ``@`` that is not the digest's is userinfo: a password may hold
    ``/`` or ``@`` itself, so no other split is safe. ``name@`` followed by a malformed digest
    stays readable.
    """
    digest = _TRAILING_DIGEST.search(text)
    name, suffix = (text[: digest.start()], digest.group(0)) if digest else (text, "")
    before, at, after = name.rpartition("@")
    if not at:
        return text
    scheme = _SCHEME.match(before)
    userinfo = before[scheme.end() :] if scheme else before
    if not suffix and "/" not in after and (":" not in userinfo or "/" in userinfo):
        return text  # ``name@<bad digest>``: nothing secret, keep it readable
    prefix = scheme.group(0) if scheme else ""
    return f"{prefix}{REDACTED}@{after}{suffix}"


@dataclass(frozen=True, slots=True)
class ImageReference:
    """``[domain/]path[:tag][@digest]`` exactly as written."""

    domain: str | None
    path: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse a pull spec; the only step that can fail."""
        shown = redact(text)
        if shown != text:
            raise InputError(
                f"invalid image reference {shown!r}: credentials (user:password@) do not belong "
                "in an image reference",
                hint="give the registry credentials with registries[].auth in streamlock.yaml "
                "or a Docker config file",
            )
        if not text or len(text) > 4096 or text != text.strip():
            raise InputError(f"invalid image reference {text!r}")
        rest, digest = text, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not _ANY_DIGEST_RE.match(digest):
                raise InputError(f"invalid image reference {text!r}: bad digest {digest!r}")
        tag = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not TAG_RE.match(tag):
                raise InputError(f"invalid image reference {text!r}: bad tag {tag!r}")
        domain = None
        first, sep, remainder = rest.partition("/")
        if sep and (
            ("." in first or ":" in first) or first == "localhost" or first != first.lower()
        ):
            domain, rest = first, remainder
            if not DOMAIN_RE.match(domain):
                raise InputError(f"invalid image reference {text!r}: bad registry {domain!r}")
        if not PATH_RE.match(rest):
            raise InputError(
                f"invalid image reference {text!r}: repository must be lower-case "
                "components separated by '/'"
            )
        if len(rest) + len(domain or "") + 1 > 255:
            raise InputError(f"invalid image reference {text!r}: name longer than 255 characters")
        return cls(domain=domain, path=rest, tag=tag, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def name(self) -> str:
        """The repository as written, without tag or digest."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def registry(self) -> str:
        """The registry host for config lookup: ``docker.io`` for all Docker Hub spellings."""
        if self.domain is None or self.domain in _HUB_ALIASES:
            return DOCKER_HUB
        return self.domain

    @property
    def registry_host(self) -> str:
        """The host[:port] that serves the API."""
        registry = self.registry
        return DOCKER_HUB_API if registry == DOCKER_HUB else registry

    @property
    def repository(self) -> str:
        """The repository path on the registry (``library/`` added for Docker Hub)."""
        if self.registry == DOCKER_HUB and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    @property
    def is_loopback(self) -> bool:
        """Loopback registries speak plain HTTP by default, as Docker does."""
        host = self.registry
        host = host[1 : host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def with_digest(self, digest: str) -> str:
        """The pinned pull spec ``name@digest`` (drops the tag, keeps the name as written)."""
        return f"{self.name}@{digest}"

    def with_tag(self, tag: str) -> ImageReference:
        return ImageReference(self.domain, self.path, tag, None)

    @property
    def canonical(self) -> str:
        """A normalised key, so ``python`` and ``docker.io/library/python`` resolve once."""
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text
