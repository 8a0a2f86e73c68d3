"""Registry authentication: ``WWW-Authenticate`` challenges, Basic headers, Bearer tokens."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from reconciler.credentials import Credential, CredentialStore, normalize_key
from reconciler.errors import AuthError, MalformedAnswer
from reconciler.manifest import load_json
from reconciler.registry.endpoints import Endpoint, split_host
from reconciler.registry.exchange import USER_AGENT_BYTES, Exchanger, safe_url, shared

DEFAULT_TOKEN_TTL = 60.0
TOKEN_MARGIN = 5.0
MAX_TOKEN_BODY = 1024 * 1024
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+\Z")  # visible ASCII: safe in an Authorization header


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: ``basic`` or ``bearer`` with its parameters."""

    scheme: str
    params: Mapping[str, str]


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CHALLENGE_PART = re.compile(
    rf'\s*(?:(?P<key>{_TOKEN})\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s,]*))'
    rf"|(?P<scheme>{_TOKEN})(?:\s+|$|(?=,)))\s*,?"
)


def parse_www_authenticate(header: str) -> tuple[Challenge, ...]:
    """Parse challenges as ``key="value"`` pairs; scopes hold commas, so never split on ``,``."""
    challenges: list[tuple[str, dict[str, str]]] = []
    position = 0
    header = header.strip()
    while position < len(header):
        match = _CHALLENGE_PART.match(header, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        if match.group("scheme") is not None:
            challenges.append((match.group("scheme").lower(), {}))
        elif challenges:
            quoted = match.group("quoted")
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group("bare")
            challenges[-1][1][match.group("key").lower()] = value
    return tuple(Challenge(scheme, params) for scheme, params in challenges)


def default_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


class Authenticator:
    """Answers a registry's challenges with the operator's credentials; caches tokens.

    Basic and Bearer auth from the registry's own ``WWW-Authenticate``; tokens are cached per
    registry and scope until they expire, and concurrent askers share one token request.
    A credential goes only to the host it was stored for: the registry's own origin, or a token
    realm on another host with that realm host's own credential (never the registry's).
    """

    def __init__(
        self, credentials: CredentialStore, http: Exchanger, clock: Callable[[], float]
    ) -> None:
        self._credentials = credentials
        self._http = http
        self._clock = clock

    def sources(self, endpoint: Endpoint) -> str:
        """Where credentials for the endpoint were looked for, for a hint."""
        return self._credentials.describe_sources(endpoint.cred_key)

    async def authorization(self, endpoint: Endpoint, repository: str) -> bytes | None:
        """What to send before being asked, once the registry told us how it authenticates."""
        if endpoint.auth_scheme == "basic":
            header = endpoint.basic.get(repository)
            if header is None:
                credential = await self._credential(endpoint, repository)
                basic = credential.basic_header() if credential is not None else None
                if basic is None:
                    return None
                header = endpoint.basic[repository] = basic.encode()
            return header
        if endpoint.auth_scheme == "bearer":
            scope = default_scope(repository)
            cached = endpoint.tokens.get(scope)
            if cached is not None and cached[1] > self._clock():
                return cached[0]
            return await self._token(endpoint, repository, scope)
        return None

    def forget(self, endpoint: Endpoint, repository: str) -> None:
        endpoint.tokens.pop(default_scope(repository), None)
        endpoint.basic.pop(repository, None)

    async def answer_challenge(
        self, endpoint: Endpoint, repository: str, challenges: Sequence[Challenge]
    ) -> bytes:
        by_scheme = {c.scheme: c for c in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None and bearer.params.get("realm"):
            endpoint.auth_scheme = "bearer"
            endpoint.realm = bearer.params["realm"]
            endpoint.service = bearer.params.get("service")
            scope = bearer.params.get("scope") or default_scope(repository)
            return await self._token(endpoint, repository, scope)
        if "basic" in by_scheme:
            endpoint.auth_scheme = "basic"
            credential = await self._credential(endpoint, repository)
            basic = credential.basic_header() if credential is not None else None
            if basic is None:
                raise AuthError(
                    f"{endpoint.host}/{repository} requires credentials and none were found",
                    hint=f"looked in: {self._credentials.describe_sources(endpoint.cred_key)}",
                )
            header = endpoint.basic[repository] = basic.encode()
            return header
        raise AuthError(f"{endpoint.host}/{repository}: unsupported authentication challenge")

    async def _credential(self, endpoint: Endpoint, repository: str) -> Credential | None:
        return await self._credentials.get(endpoint.cred_key, repository)

    async def _realm_credential(
        self, endpoint: Endpoint, repository: str, netloc: str
    ) -> Credential | None:
        """The credential stored for the realm's host: the registry's when the realm is on the
        registry's host (any port), else only what was stored for the realm host itself."""
        realm = normalize_key(netloc.rpartition("@")[2].lower())
        ours = {normalize_key(endpoint.cred_key.lower()), normalize_key(endpoint.host.lower())}
        if split_host(realm)[0] in {split_host(key)[0] for key in ours}:
            return await self._credential(endpoint, repository)
        return await self._credentials.get(realm, repository)

    async def _token(self, endpoint: Endpoint, repository: str, scope: str) -> bytes:
        """A bearer token for ``scope``, cached until it expires; askers share one request."""
        key = default_scope(repository)

        async def fetch() -> bytes:
            header, ttl = await self._fetch_token(endpoint, repository, scope)
            expiry = self._clock() + max(0.0, ttl - min(TOKEN_MARGIN, ttl / 10))
            endpoint.tokens[key] = (header, expiry)
            return header

        return await shared(endpoint.token_inflight, key, fetch)

    async def _fetch_token(
        self, endpoint: Endpoint, repository: str, scope: str
    ) -> tuple[bytes, float]:
        realm = endpoint.realm or ""
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuthError(
                f"{endpoint.host}: token realm {safe_url(realm)!r} is not an http(s) URL"
            )
        credential = await self._realm_credential(endpoint, repository, parts.netloc)
        params = {"scope": scope}
        if endpoint.service:
            params["service"] = endpoint.service
        headers = [(b"Host", parts.netloc.encode("ascii")), (b"User-Agent", USER_AGENT_BYTES)]
        if credential is not None and credential.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credential.identity_token,
                "client_id": "streamlock",
                **params,
            }
            body = urlencode(form).encode()
            headers += [
                (b"Content-Type", b"application/x-www-form-urlencoded"),
                (b"Content-Length", str(len(body)).encode()),
            ]
            response = await self._http.retrying(
                endpoint, b"POST", realm, headers, MAX_TOKEN_BODY, content=body
            )
        else:
            basic = credential.basic_header() if credential is not None else None
            if basic is not None:
                headers.append((b"Authorization", basic.encode()))
            separator = "&" if parts.query else "?"
            query = urlencode(sorted(params.items()), quote_via=quote)
            response = await self._http.retrying(
                endpoint, b"GET", f"{realm}{separator}{query}", headers, MAX_TOKEN_BODY
            )
        if response.status != 200:
            who = f"credentials from {credential.source}" if credential else "anonymous access"
            raise AuthError(
                f"{endpoint.host}/{repository}: token server refused {who} "
                f"(HTTP {response.status})",
                hint=None
                if credential
                else f"looked in: {self._credentials.describe_sources(endpoint.cred_key)}",
            )
        what = f"{endpoint.host}: the token server's answer"
        data = load_json(response.body, what, limit=MAX_TOKEN_BODY)
        try:
            token = data.get("token") or data.get("access_token")
            ttl = float(data.get("expires_in") or DEFAULT_TOKEN_TTL)
        except (ValueError, AttributeError, TypeError, OverflowError) as exc:
            raise MalformedAnswer(f"{what} is not a token answer") from exc
        if not isinstance(token, str):
            raise MalformedAnswer(f"{what} names no token")
        if not _HEADER_TOKEN.match(token):
            # Never echo it: a token is a secret even when it is unusable.
            raise AuthError(f"{endpoint.host}: the token server's answer holds no usable token")
        return f"Bearer {token}".encode(), ttl
