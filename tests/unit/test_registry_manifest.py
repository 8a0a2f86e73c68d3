"""What registry JSON means: manifest kinds, platform selection, config metadata, digests."""

from __future__ import annotations

import json

import pytest

from reconciler.errors import DigestMismatch, MalformedAnswer, UnsupportedManifest
from reconciler.manifest import (
    ACCEPT,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageManifest,
    ManifestIndex,
    Platform,
    load_json,
    parse_config,
    parse_manifest,
    sha256_digest,
    verify_digest,
)

D = {name: "sha256:" + c * 64 for name, c in (("amd", "a"), ("arm", "b"), ("att", "c"))}


def _index(entries: list[dict], media_type: str | None = OCI_INDEX) -> bytes:
    data: dict = {"schemaVersion": 2, "manifests": entries}
    if media_type:
        data["mediaType"] = media_type
    return json.dumps(data).encode()


def _entry(digest: str, os: str, arch: str, variant: str | None = None) -> dict:
    platform = {"os": os, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1, "platform": platform}


MULTI = _index(
    [
        _entry(D["amd"], "linux", "amd64"),
        _entry(D["arm"], "linux", "arm64", "v8"),
        _entry(D["att"], "unknown", "unknown"),
    ]
)


def test_accept_lists_all_four_types() -> None:
    """Accept names OCI index and manifest and both Docker types, or 2.8.2 changes the pin."""
    assert [t.strip() for t in ACCEPT.split(",")] == [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_LIST,
        DOCKER_MANIFEST,
    ]


def test_image_manifest_config_digest() -> None:
    """A single-platform manifest yields its config blob digest."""
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {"digest": D["amd"]}}
    ).encode()
    assert parse_manifest(body, None, "x") == ImageManifest(DOCKER_MANIFEST, D["amd"])


def test_index_without_media_type_is_recognised_by_shape() -> None:
    """An OCI index may omit mediaType; a ``manifests`` list makes it an index."""
    manifest = parse_manifest(_index([_entry(D["amd"], "linux", "amd64")], None), None, "x")
    assert isinstance(manifest, ManifestIndex)


def test_content_type_used_when_body_has_no_media_type() -> None:
    """Without a mediaType field the Content-Type header decides."""
    body = json.dumps({"schemaVersion": 2, "config": {"digest": D["amd"]}}).encode()
    manifest = parse_manifest(body, f"{DOCKER_MANIFEST}; charset=utf-8", "x")
    assert manifest == ImageManifest(DOCKER_MANIFEST, D["amd"])


@pytest.mark.parametrize(
    "body",
    [
        {"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": []},
        {"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
    ],
)
def test_schema1_refused(body: dict) -> None:
    """Docker schema 1 manifests are refused with a message that says so."""
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse_manifest(json.dumps(body).encode(), None, "quay.io/a:b")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b'{"config": {}}',
        b'{"mediaType": "application/vnd.oci.image.index.v1+json"}',
        b'{"manifests": [{"mediaType": "x"}]}',
    ],
    ids=["not-json", "not-an-object", "no-config-digest", "index-without-list", "entry-no-digest"],
)
def test_unreadable_manifests_are_malformed(body: bytes) -> None:
    """Bodies that are not a manifest's JSON are a MalformedAnswer, not an unsupported type."""
    with pytest.raises(MalformedAnswer, match=r"^x: "):
        parse_manifest(body, None, "x")


def test_unknown_manifest_type_is_unsupported() -> None:
    """A readable document of an unknown media type is an UnsupportedManifest naming the type."""
    with pytest.raises(UnsupportedManifest, match="application/x-other") as caught:
        parse_manifest(b'{"mediaType": "application/x-other"}', None, "x")
    assert not isinstance(caught.value, MalformedAnswer)


@pytest.mark.parametrize(
    ("wanted", "digest"),
    [
        ("linux/amd64", D["amd"]),
        ("linux/arm64", D["arm"]),
        ("linux/arm64/v8", D["arm"]),
        ("linux/aarch64", D["arm"]),
        ("Linux/x86_64", D["amd"]),
        ("linux/s390x", None),
    ],
)
def test_select_platform(wanted: str, digest: str | None) -> None:
    """Selection normalises like containerd: arm64 is arm64/v8, aarch64 is arm64."""
    index = parse_manifest(MULTI, None, "x")
    assert isinstance(index, ManifestIndex)
    entry = index.select(Platform.parse(wanted))
    assert (entry.digest if entry else None) == digest


def test_arm64_without_variant_is_v8() -> None:
    """An index entry ``linux/arm64`` with no variant is what ``linux/arm64/v8`` asks for."""
    index = parse_manifest(_index([_entry(D["arm"], "linux", "arm64")]), None, "x")
    assert isinstance(index, ManifestIndex)
    entry = index.select(Platform.parse("linux/arm64/v8"))
    assert entry is not None
    assert entry.digest == D["arm"]


def test_arm_defaults_to_v7() -> None:
    """``linux/arm`` means v7, as containerd assumes; v6 is another platform."""
    assert Platform.parse("linux/arm").matches(Platform.parse("linux/arm/v7"))
    assert not Platform.parse("linux/arm").matches(Platform.parse("linux/arm/v6"))
    assert Platform.parse("linux/armhf").matches(Platform.parse("linux/arm/7"))


def test_platform_digests_skip_attestations() -> None:
    """PreserveOriginal records runnable platforms as written, not attestation manifests."""
    index = parse_manifest(MULTI, None, "x")
    assert isinstance(index, ManifestIndex)
    assert index.platform_digests() == {"linux/amd64": D["amd"], "linux/arm64/v8": D["arm"]}


def test_platform_parse_rejects_garbage() -> None:
    """A platform is ``os/arch[/variant]``."""
    with pytest.raises(ValueError, match="os/arch"):
        Platform.parse("linux")


def test_config_metadata() -> None:
    """created, platform and only the recorded OCI labels come from the config blob."""
    body = json.dumps(
        {
            "created": "2026-11-20T10:00:00Z",
            "os": "linux",
            "architecture": "arm64",
            "variant": "v8",
            "config": {
                "Labels": {
                    "org.opencontainers.image.version": "1.4",
                    "org.opencontainers.image.revision": "abc",
                    "maintainer": "someone",
                }
            },
        }
    ).encode()
    config = parse_config(body, "x")
    assert config.created == "2026-11-20T10:00:00Z"
    assert config.platform == "linux/arm64/v8"
    assert config.labels == {
        "org.opencontainers.image.version": "1.4",
        "org.opencontainers.image.revision": "abc",
    }


def test_config_without_labels() -> None:
    """A config with null Labels and no created time gives empty metadata, not an error."""
    config = parse_config(
        b'{"os": "linux", "architecture": "amd64", "config": {"Labels": null}}', "x"
    )
    assert (config.created, config.platform, config.labels) == (None, "linux/amd64", {})


@pytest.mark.parametrize("body", [b"not json", b"\xff", b"[1]"])
def test_unusable_config_refused(body: bytes) -> None:
    """A config blob that is not a JSON object is a MalformedAnswer, naming the image."""
    with pytest.raises(MalformedAnswer, match=r"^quay\.io/a:b: the image config is not"):
        parse_config(body, "quay.io/a:b")


def test_verify_digest_accepts_matching_claim() -> None:
    """The computed digest is returned when it equals the claim (or there is none)."""
    assert verify_digest(b"abc", sha256_digest(b"abc"), "x") == sha256_digest(b"abc")
    assert verify_digest(b"abc", None, "x") == sha256_digest(b"abc")


def test_verify_digest_refuses_mismatch() -> None:
    """A body whose sha256 differs from the claim is a DigestMismatch naming both."""
    with pytest.raises(DigestMismatch, match=sha256_digest(b"abc")):
        verify_digest(b"abc", D["amd"], "x")


def test_verify_digest_refuses_other_algorithms() -> None:
    """A claim in another algorithm is unsupported rather than silently accepted."""
    with pytest.raises(UnsupportedManifest, match="algorithm"):
        verify_digest(b"abc", "sha512:" + "0" * 128, "x")


@pytest.mark.parametrize(
    "body",
    [b"[" * 60_000, b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 65 + b"1" + b"}" * 65],
    ids=["unterminated", "deep-array", "just-over-the-limit"],
)
def test_deep_json_is_malformed(body: bytes) -> None:
    """JSON nested deeper than the limit is a MalformedAnswer, never a RecursionError."""
    with pytest.raises(MalformedAnswer, match="nested deeper than 64 levels"):
        load_json(body, "the config", limit=1 << 20)


def test_json_at_the_depth_limit_is_read() -> None:
    """Nesting up to the limit is read as usual."""
    assert load_json(b"[" * 64 + b"]" * 64, "x", limit=1 << 20) is not None


def test_json_over_its_size_limit_is_refused() -> None:
    """A JSON body over its limit is a MalformedAnswer, refused before parsing."""
    with pytest.raises(MalformedAnswer, match="larger than 10 bytes"):
        load_json(b'{"token": "abcdefgh"}', "the token", limit=10)


def test_deep_config_blob() -> None:
    """A config blob nested deeply is this image's MalformedAnswer."""
    with pytest.raises(MalformedAnswer, match="image config is nested deeper"):
        parse_config(b'{"config":' * 100 + b"{}" + b"}" * 100, "app:1")
