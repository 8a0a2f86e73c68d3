"""The registry shell: what does a reference point to right now?

One pooled HTTP/1.1 client per registry host (httpcore, the layer beneath httpx: the hot path
spends a third less CPU per request without httpx's request/response models). The package holds
one concept per module:

- :mod:`~reconciler.registry.client`: :class:`RegistryClient`, resolution, tag listing, budgets;
- :mod:`~reconciler.registry.auth`: challenges, Basic headers and Bearer tokens;
- :mod:`~reconciler.registry.endpoints`: scheme and TLS per host, pools, concurrency and rate;
- :mod:`~reconciler.registry.exchange`: one request with its retries, and what a response is.
"""

from reconciler import transport  # noqa: F401  (first: how httpcore is imported)
from reconciler.registry.auth import Challenge, default_scope, parse_www_authenticate
from reconciler.registry.client import (
    RegistryClient,
    mirror_location,
    next_link,
    parse_tag_list,
)
from reconciler.registry.endpoints import RateLimiter, choose_scheme
from reconciler.registry.exchange import (
    RetryableResponse,
    RetryPolicy,
    Timeouts,
    backoff,
    parse_retry_after,
)

__all__ = [
    "Challenge",
    "RateLimiter",
    "RegistryClient",
    "RetryPolicy",
    "RetryableResponse",
    "Timeouts",
    "backoff",
    "choose_scheme",
    "default_scope",
    "mirror_location",
    "next_link",
    "parse_retry_after",
    "parse_tag_list",
    "parse_www_authenticate",
]
