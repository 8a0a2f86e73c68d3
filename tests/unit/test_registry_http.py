"""HTTP details of the registry client that need no server: challenges, Retry-After, links."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpcore
import pytest

from reconciler import status
from reconciler.config import Config, RegistryConfig
from reconciler.errors import InputError, MalformedAnswer
from reconciler.image import ImportFailure, ImportRequest
from reconciler.registry import (
    Challenge,
    RateLimiter,
    RegistryClient,
    RetryableResponse,
    RetryPolicy,
    backoff,
    choose_scheme,
    mirror_location,
    next_link,
    parse_retry_after,
    parse_www_authenticate,
)
from reconciler.registry.exchange import safe_url
from reconciler.registry.exchange import shared as _shared

NOW = datetime(2026, 11, 21, 8, 0, 0, tzinfo=UTC)


def test_bearer_challenge_scope_with_commas() -> None:
    """A scope holding commas stays whole: pairs are parsed, the header is not split on ','."""
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push"'
    )
    assert parse_www_authenticate(header) == (
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example.com/token",
                "service": "registry.example.com",
                "scope": "repository:a/b:pull,push",
            },
        ),
    )


def test_two_challenges_and_spaces() -> None:
    """Several challenges in one header, with spaces and bare tokens, are all returned."""
    header = 'Basic realm="Registry Realm" , Bearer realm="https://x/token", error=invalid_token'
    assert parse_www_authenticate(header) == (
        Challenge("basic", {"realm": "Registry Realm"}),
        Challenge("bearer", {"realm": "https://x/token", "error": "invalid_token"}),
    )


def test_quoted_escapes() -> None:
    """Backslash escapes inside quoted values are undone."""
    (challenge,) = parse_www_authenticate(r'Basic realm="a \"quoted\" realm"')
    assert challenge.params["realm"] == 'a "quoted" realm'


def test_scheme_is_case_insensitive() -> None:
    """``BEARER`` and ``bearer`` are the same scheme; parameter names are lower-cased."""
    (challenge,) = parse_www_authenticate('BEARER Realm="r"')
    assert (challenge.scheme, dict(challenge.params)) == ("bearer", {"realm": "r"})


def test_empty_challenge() -> None:
    """No header, no challenges."""
    assert parse_www_authenticate("") == ()


def test_retry_after_seconds() -> None:
    """Retry-After in delta-seconds is taken as is."""
    assert parse_retry_after("7", NOW) == 7.0


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date is the time from now until then."""
    assert parse_retry_after("Sat, 21 Nov 2026 08:00:30 GMT", NOW) == 30.0


def test_retry_after_in_the_past() -> None:
    """A date already past means retry now, never a negative wait."""
    assert parse_retry_after("Sat, 21 Nov 2026 07:00:00 GMT", NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-3"])
def test_retry_after_unusable(value: str | None) -> None:
    """Anything else is ignored (the client's own backoff applies)."""
    assert parse_retry_after(value, NOW) is None


def test_backoff_honours_retry_after() -> None:
    """A 429 with Retry-After waits what the server asked."""
    assert backoff(RetryableResponse(429, 3.0), RetryPolicy()) == 3.0


def test_backoff_caps_retry_after() -> None:
    """A Retry-After beyond the policy's cap is cut to the cap."""
    assert backoff(RetryableResponse(503, 3600.0), RetryPolicy(max_retry_after=20)) == 20


def test_backoff_plain_5xx_uses_exponential() -> None:
    """A 5xx without Retry-After is retried with the jittered exponential backoff."""
    assert backoff(RetryableResponse(502, None), RetryPolicy()) is True


def test_backoff_connection_errors() -> None:
    """Resets and timeouts are retried; certificate failures are not."""
    assert backoff(httpcore.ReadError("reset"), RetryPolicy()) is True
    assert backoff(httpcore.ConnectTimeout("slow"), RetryPolicy()) is True
    bad_cert = httpcore.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert backoff(bad_cert, RetryPolicy()) is False


def test_backoff_ignores_other_errors() -> None:
    """Programming errors are never retried."""
    assert backoff(ValueError("bug"), RetryPolicy()) is False


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [
        ("mirror.example.com/quay", ("mirror.example.com", "quay/ns/app")),
        ("mirror.example.com", ("mirror.example.com", "ns/app")),
        ("mirror.example.com:5000/a/b/", ("mirror.example.com:5000", "a/b/ns/app")),
    ],
)
def test_mirror_location(mirror: str, expected: tuple[str, str]) -> None:
    """A mirror is a host and an optional prefix put before the repository."""
    assert mirror_location(mirror, "ns/app") == expected


def test_next_link_relative_keeps_query() -> None:
    """A relative ``Link`` is followed as given, its query untouched."""
    header = '</v2/a/tags/list?last=t9&n=10>; rel="next"'
    got = next_link(header, "https://r.example/v2/a/tags/list?n=10", "https://r.example")
    assert got == "/v2/a/tags/list?last=t9&n=10"


def test_next_link_absolute_same_origin() -> None:
    """An absolute link to the same registry becomes a path."""
    header = '<https://r.example/v2/a/tags/list?next_page=abc>; rel="next"'
    got = next_link(header, "https://r.example/v2/a/tags/list", "https://r.example")
    assert got == "/v2/a/tags/list?next_page=abc"


def test_next_link_absent_or_other_rel() -> None:
    """No ``rel=next`` means the last page."""
    assert next_link(None, "https://r.example/x", "https://r.example") is None
    assert next_link('</x>; rel="prev"', "https://r.example/x", "https://r.example") is None


def test_next_link_to_another_origin_is_an_error() -> None:
    """A ``Link`` to another origin is an error, not a silently partial list; its query unshown."""
    header = '<https://u:pw@elsewhere.example/v2/a/tags/list?sig=s3cret>; rel="next"'
    with pytest.raises(MalformedAnswer, match="another origin") as caught:
        next_link(header, "https://r.example/v2/a/tags/list", "https://r.example")
    assert "s3cret" not in str(caught.value)
    assert "pw" not in str(caught.value)


async def test_disallowed_registry_fails_without_a_request() -> None:
    """A registry outside allowedRegistries is a permanent AccessDenied failure."""
    config = Config(allowed_registries=("quay.io",))
    async with RegistryClient(config, env={}) as client:
        # Were 127.0.0.1:9 asked, the failure would be a refused connection instead.
        observation = await client.resolve(ImportRequest("127.0.0.1:9/app:3"))
    assert observation == ImportFailure(
        status.ACCESS_DENIED,
        "127.0.0.1:9 is not in allowedRegistries of streamlock.yaml",
        transient=False,
    )


async def test_disallowed_registry_lists_no_tags() -> None:
    """Tag listing refuses a registry outside allowedRegistries before any request."""
    async with RegistryClient(Config(allowed_registries=("quay.io",)), env={}) as client:
        with pytest.raises(InputError, match="allowedRegistries"):
            await client.list_tags("127.0.0.1:9/app")  # were it asked: connection refused


async def test_spellings_of_one_image_resolved_once() -> None:
    """``python:3`` and its docker.io spellings are one resolution: they share one observation."""
    spellings = ["python:3", "docker.io/library/python:3", "index.docker.io/library/python:3"]
    config = Config(allowed_registries=("quay.io",))  # refused before any request
    async with RegistryClient(config, env={}) as client:
        results = await client.resolve_all([ImportRequest(s) for s in spellings])
    assert len({id(results[ImportRequest(s).key]) for s in spellings}) == 1
    assert isinstance(results[ImportRequest("python:3").key], ImportFailure)


async def test_bad_reference_is_invalid_spec() -> None:
    """An unparsable reference is an InvalidSpec failure, not an exception."""
    async with RegistryClient(Config(), env={}) as client:
        observation = await client.resolve(ImportRequest("Not A Reference"))
    assert isinstance(observation, ImportFailure)
    assert (observation.reason, observation.transient) == (status.INVALID_SPEC, False)


async def test_bad_platform_is_invalid_spec() -> None:
    """A platform that is not os/arch[/variant] is an InvalidSpec failure."""
    async with RegistryClient(Config(), env={}) as client:
        observation = await client.resolve(ImportRequest("127.0.0.1:9/a/b:1", platform="amd64"))
    assert isinstance(observation, ImportFailure)
    assert observation.reason == status.INVALID_SPEC


def test_backoff_zero_retry_after_still_retries() -> None:
    """``Retry-After: 0`` means retry now: a zero delay, not "do not retry"."""
    decision = backoff(RetryableResponse(429, 0.0), RetryPolicy())
    assert decision is not False
    assert decision == 0.0


def test_rate_limiter_spaces_requests() -> None:
    """At 10 requests/s, a burst of three waits 0, 0.1 and 0.2 s; an idle limiter waits 0."""
    limiter = RateLimiter(10)
    assert [round(limiter.reserve(100.0), 6) for _ in range(3)] == [0.0, 0.1, 0.2]
    assert limiter.reserve(200.0) == 0.0


async def test_shared_fetch_survives_its_first_asker_running_out_of_time() -> None:
    """A waiter on a shared fetch whose asker was cancelled fetches itself and gets the value."""
    inflight: dict[str, asyncio.Future[str]] = {}
    calls: list[str] = []
    started = asyncio.Event()

    async def slow() -> str:
        calls.append("slow")
        started.set()
        await asyncio.sleep(30)
        return "never"

    async def quick() -> str:
        calls.append("quick")
        return "value"

    first = asyncio.create_task(_shared(inflight, "k", slow))
    await started.wait()
    second = asyncio.create_task(_shared(inflight, "k", quick))
    await asyncio.sleep(0)
    first.cancel()
    assert await asyncio.wait_for(second, 5) == "value"
    assert calls == ["slow", "quick"]
    assert first.cancelled()
    assert inflight == {}


@pytest.mark.parametrize(
    ("host", "config", "expected"),
    [
        ("quay.io", None, ("https", False)),
        ("registry.lab.example:5000", None, ("https", False)),
        ("10.0.0.1:5000", None, ("https", False)),
        ("localhost:5000", None, ("http", False)),
        ("127.0.0.1:5000", None, ("http", False)),
        ("[::1]:5000", None, ("http", False)),
        ("127.0.0.1:5000", RegistryConfig("127.0.0.1:5000", ca_file="ca.pem"), ("https", False)),
        ("lab.example", RegistryConfig("lab.example", insecure=True), ("https", True)),
        ("lab.example", RegistryConfig("lab.example", ca_file="ca.pem"), ("https", False)),
    ],
)
def test_choose_scheme(
    host: str, config: RegistryConfig | None, expected: tuple[str, bool]
) -> None:
    """TLS for every registry but loopback ones without TLS files; insecure may fall back."""
    assert choose_scheme(host, config) == expected


async def test_rate_limiter_sleeps_for_its_slot() -> None:
    """The limiter asks its sleep function for exactly the wait reserve() promises."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(4, clock=lambda: 50.0, sleep=sleep)
    for _ in range(3):
        await limiter.wait()
    assert slept == [0.25, 0.5]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:p@ss@reg.example:5000/v2/x?X-Amz-Signature=s3cret?y=1",
            "https://reg.example:5000/v2/x",
        ),
        ("/v2/shop/app/blobs/sha256:ab?X-Amz-Signature=s3cret", "/v2/shop/app/blobs/sha256:ab"),
    ],
    ids=["url", "path"],
)
def test_safe_url_drops_userinfo_and_query(url: str, shown: str):
    """A URL in a message keeps no password (even one with '@') and no signed query."""
    assert safe_url(url) == shown
