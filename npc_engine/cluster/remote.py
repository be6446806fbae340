"""Results of calls to other deployments (the state service, the replicas)."""

from __future__ import annotations

from typing import Any

__all__ = ["result_of", "unwrapped"]


def result_of(response: Any) -> Any:
    """`response.result()`, raising the replica's own exception rather than Ray's wrapper."""
    try:
        return response.result()
    except Exception as exc:
        raise unwrapped(exc) from None


def unwrapped(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else exc
