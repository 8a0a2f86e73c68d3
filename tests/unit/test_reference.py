"""Image references: distribution's grammar, exact round trips, Docker Hub normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import InputError
from reconciler.reference import ImageReference, redact

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_alnum = st.text(_ALNUM, min_size=1, max_size=8)
_separator = st.sampled_from([".", "_", "__", "-", "--"])


@st.composite
def _component(draw: st.DrawFn, dots: bool = True) -> str:
    parts = [draw(_alnum)]
    for _ in range(draw(st.integers(0, 2))):
        separator = draw(_separator)
        if not dots and separator == ".":
            separator = "-"
        parts += [separator, draw(_alnum)]
    return "".join(parts)


_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_port = st.integers(1, 65535).map(str)


@st.composite
def _domain(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["dotted", "port", "localhost", "ipv6"]))
    if kind == "localhost":
        host = "localhost"
    elif kind == "ipv6":
        host = "[::1]"
    else:
        labels = draw(st.lists(_label, min_size=2 if kind == "dotted" else 1, max_size=3))
        host = ".".join(labels)
    if kind in ("port", "ipv6") or draw(st.booleans()):
        host += ":" + draw(_port)
    return host


@st.composite
def references(draw: st.DrawFn) -> str:
    """Valid pull specs in distribution's grammar, as a person could write them."""
    domain = draw(st.none() | _domain())
    first = draw(_component(dots=domain is not None))
    if domain is None and first == "localhost":
        first = "local"
    rest = draw(st.lists(_component(), max_size=2))
    text = "/".join([first, *rest])
    if domain is not None:
        text = f"{domain}/{text}"
    tag = draw(st.none() | st.from_regex(r"[\w][\w.-]{0,20}", fullmatch=True))
    if tag is not None and tag.isascii():
        text += f":{tag}"
    if draw(st.booleans()):
        text += "@sha256:" + draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    return text


@given(references())
def test_round_trip(text: str) -> None:
    """Parsing and printing a valid reference gives back exactly what was written."""
    assert str(ImageReference.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "registry", "host", "repository", "canonical"),
    [
        (
            "python",
            "docker.io",
            "registry-1.docker.io",
            "library/python",
            "docker.io/library/python",
        ),
        (
            "python:3.12",
            "docker.io",
            "registry-1.docker.io",
            "library/python",
            "docker.io/library/python:3.12",
        ),
        (
            "docker.io/python",
            "docker.io",
            "registry-1.docker.io",
            "library/python",
            "docker.io/library/python",
        ),
        (
            "index.docker.io/library/python",
            "docker.io",
            "registry-1.docker.io",
            "library/python",
            "docker.io/library/python",
        ),
        (
            "registry-1.docker.io/user/app",
            "docker.io",
            "registry-1.docker.io",
            "user/app",
            "docker.io/user/app",
        ),
        ("user/app", "docker.io", "registry-1.docker.io", "user/app", "docker.io/user/app"),
        ("quay.io/ns/app:1", "quay.io", "quay.io", "ns/app", "quay.io/ns/app:1"),
        (
            "localhost:5000/app@sha256:" + "c" * 64,
            "localhost:5000",
            "localhost:5000",
            "app",
            "localhost:5000/app@sha256:" + "c" * 64,
        ),
    ],
)
def test_docker_hub_normalisation(
    text: str, registry: str, host: str, repository: str, canonical: str
) -> None:
    """Every Docker Hub spelling talks to registry-1.docker.io and gains library/ when bare."""
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.registry_host, ref.repository) == (registry, host, repository)
    assert ref.canonical == canonical


def test_canonical_makes_spellings_equal() -> None:
    """``python`` and ``docker.io/library/python`` share one canonical key."""
    spellings = ["python:3", "docker.io/python:3", "index.docker.io/library/python:3"]
    assert {ImageReference.parse(s).canonical for s in spellings} == {"docker.io/library/python:3"}


def test_pull_spec_keeps_name_as_written() -> None:
    """The pinned pull spec keeps the repository as the user wrote it (no normalisation)."""
    ref = ImageReference.parse("python:3")
    assert ref.with_digest("sha256:" + "a" * 64) == "python@sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "loopback"),
    [
        ("localhost/app", True),
        ("localhost:5000/app", True),
        ("127.0.0.1:5000/app", True),
        ("127.3.4.5/app", True),
        ("[::1]:5000/app", True),
        ("example.com/app", False),
        ("10.0.0.1:5000/app", False),
        ("python", False),
    ],
)
def test_loopback(text: str, loopback: bool) -> None:
    """Loopback registries (localhost, 127/8, ::1) are recognised with or without a port."""
    assert ImageReference.parse(text).is_loopback is loopback


def test_uppercase_first_component_is_a_domain() -> None:
    """A first component with capitals can only be a registry host, as in distribution."""
    ref = ImageReference.parse("Registry/app")
    assert (ref.domain, ref.path) == ("Registry", "app")


def test_digest_and_tag_together() -> None:
    """``name:tag@digest`` keeps both parts; the digest is what a registry is asked for."""
    ref = ImageReference.parse("quay.io/a/b:1@sha256:" + "b" * 64)
    assert (ref.tag, ref.digest) == ("1", "sha256:" + "b" * 64)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " python",
        "Python",
        "quay.io/App/x",
        "app:bad/tag",
        "app@sha256:short",
        "a//b",
        "-app",
        "app:" + "x" * 129,
        "quay.io/" + "a" * 300,
    ],
)
def test_invalid(text: str) -> None:
    """Anything outside distribution's grammar is an input error naming the reference."""
    with pytest.raises(InputError, match="invalid image reference"):
        ImageReference.parse(text)


SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(
    "text",
    [
        f"alice:{SECRET}@registry.example.com/shop/app:1",
        f"alice:{SECRET}@registry.example.com:5000/shop/app@sha256:" + "d" * 64,
        f"https://alice:{SECRET}@registry.example.com/shop/app",
        f"alice:{SECRET}@registry.example.com:5000",
        f"alice:pa/ss@{SECRET}@registry.example.com/app",
    ],
)
def test_userinfo_refused_without_echoing_it(text: str) -> None:
    """Userinfo in a reference is refused, and neither its password nor its user is echoed."""
    with pytest.raises(InputError) as caught:
        ImageReference.parse(text)
    assert "credentials" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "alice" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("u:p@host/app:1", "<redacted>@host/app:1"),
        ("https://u:p@w@host/a/b", "https://<redacted>@host/a/b"),
        ("python@sha256:1234", "python@sha256:1234"),
        ("host/app@sha256:" + "a" * 64, "host/app@sha256:" + "a" * 64),
        ("quay.io/a/b:1", "quay.io/a/b:1"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    """Only userinfo is replaced; a digest and a malformed digest stay readable."""
    assert redact(text) == shown
