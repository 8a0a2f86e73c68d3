"""The one error tree of streamlock.

::

    StreamlockError                 message owned by the exception; `transient` says retry or stall
    ├── InputError                  config, stream file, lock file, access: permanent until edited
    │   ├── ValidationError         carries a list of located Problems (path:line:col: message)
    │   └── ArgumentError           a malformed command-line argument: a usage error (exit 64)
    ├── RegistryError               talking to a registry
    │   ├── AuthError               401/403 after trying the credentials we have   (permanent)
    │   ├── ManifestUnknown         404 for the tag or digest                      (permanent)
    │   ├── UnsupportedManifest     schema1, an unknown media type, nested indexes (permanent)
    │   ├── MalformedAnswer         an answer not as asked: too large, too deep,   (permanent)
    │   │                           not JSON, wrong shape, tag pages looping or leaving the origin
    │   ├── DigestMismatch          body sha256 differs from the claimed digest    (permanent)
    │   ├── RateLimited             429 after the retry budget; has retry_after    (transient)
    │   └── RegistryUnavailable     5xx, resets, timeouts after retries            (transient)
    └── GitError                    a git operation failed
        └── PushRejected            non-fast-forward after the retry budget        (transient)

I/O modules translate library exceptions at their boundary with ``raise ... from exc``;
nothing from httpx or a git process escapes ``reconcile.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


class StreamlockError(Exception):
    """Base of every error streamlock reports to a person."""

    transient: bool = False
    reason: str = "Error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}; {self.hint}"


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One located problem in a file, printed as ``path:line:col: message`` (1-based)."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class InputError(StreamlockError):
    """Something a person wrote (config, stream file, lock, CLI argument) is wrong."""

    reason = "InvalidSpec"


class ValidationError(InputError):
    """One or more located problems in one file."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ArgumentError(InputError):
    """A command-line argument that cannot mean anything (a malformed name): exit 64, so CI
    never mistakes a typo for a failed pass."""


class RegistryError(StreamlockError):
    """A registry could not tell us what a reference points to."""

    reason = "ImportFailed"
    transient = True


class AuthError(RegistryError):
    reason = "Unauthorized"
    transient = False


class ManifestUnknown(RegistryError):
    reason = "ManifestUnknown"
    transient = False


class UnsupportedManifest(RegistryError):
    reason = "UnsupportedManifest"
    transient = False


class MalformedAnswer(RegistryError):
    """The registry answered, but not with what it should have: streamlock cannot read it.

    Apart from UnsupportedManifest (a valid document of a kind we do not handle): a body over
    its size limit, JSON too deep or not JSON at all, a manifest, config, token or tag list of
    the wrong shape, tag pages that link in a loop or to another origin.
    """

    reason = "MalformedAnswer"
    transient = False


class DigestMismatch(RegistryError):
    reason = "DigestMismatch"
    transient = False


class RateLimited(RegistryError):
    reason = "RateLimited"
    transient = True

    def __init__(
        self, message: str, *, retry_after: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class RegistryUnavailable(RegistryError):
    reason = "RegistryUnavailable"
    transient = True


class GitError(StreamlockError):
    reason = "GitError"


class PushRejected(GitError):
    reason = "PushRejected"
    transient = True
