"""One error tree for every integration, mapped at the boundary.

Messages name the integration, the operation and the target, and never carry secrets
(no headers, no tokens, response bodies truncated).
"""

from __future__ import annotations

from typing import TypedDict


class Where(TypedDict):
    """Which integration failed doing which operation to which target: ``**where`` into errors."""

    integration: str
    operation: str
    target: str


class IntegrationError(Exception):
    """An outside system refused or failed an operation."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        integration: str,
        operation: str,
        target: str,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.integration = integration
        self.operation = operation
        self.target = target
        self.retry_after = retry_after
        super().__init__(f"{integration} {operation} {target}: {message}")


class RetryableIntegrationError(IntegrationError):
    """A failure that may go away on its own: a timeout, a 5xx, a rate limit, a conflict."""

    retryable = True


class IntegrationTimeout(RetryableIntegrationError):
    """The outside system did not answer in time."""


class IntegrationUnavailable(RetryableIntegrationError):
    """Connection refused, DNS failure or a 5xx answer."""


class RateLimited(RetryableIntegrationError):
    """HTTP 429; ``retry_after`` holds the server's Retry-After in seconds when given."""


class Conflict(RetryableIntegrationError):
    """HTTP 409: the object changed under us; read it again and retry."""


class NotFound(IntegrationError):
    """The model, version, alias or deployment does not exist."""


class AuthFailed(IntegrationError):
    """HTTP 401/403: credentials missing, wrong or lacking permission."""


class InvalidRequest(IntegrationError):
    """HTTP 400/422 or a response we cannot understand: retrying will not help."""


class Unsupported(IntegrationError):
    """The adapter cannot do this at all (for example a traffic split on a plain Deployment)."""
