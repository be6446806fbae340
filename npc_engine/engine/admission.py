"""What `Engine.submit` checks of a request's own fields before queueing it: its priority, its
soft deadline and its id (the template and the prompt are checked where they are prepared)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Container

from ..bounds import MAX_PRIORITY, MIN_PRIORITY
from ..errors import DeadlineError, DuplicateRequestError, RequestError

__all__ = ["MAX_REQUEST_ID_LENGTH", "check_priority", "deadline_at", "request_id_for"]

MAX_REQUEST_ID_LENGTH = 128


def check_priority(priority: object) -> float:
    """`priority` as a float, or RequestError when it is not a number in range (NaN is not)."""
    if isinstance(priority, bool) or not isinstance(priority, (int, float)) \
            or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise RequestError(f"priority must be a number in {MIN_PRIORITY:g}..{MAX_PRIORITY:g}, got {priority!r}")
    return float(priority)


def deadline_at(deadline_ms: object, now_s: float, *, request_id: str | None,
                character_id: str | None) -> float | None:
    """The monotonic second a soft deadline `deadline_ms` from `now_s` falls at (None: none), or
    DeadlineError when it is not a positive number of milliseconds."""
    if deadline_ms is None:
        return None
    if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, (int, float)) \
            or math.isnan(deadline_ms) or deadline_ms <= 0:
        raise DeadlineError(f"deadline_ms must be a positive number of milliseconds from now "
                            f"(a deadline in the future), got {deadline_ms!r}",
                            request_id=request_id, character_id=character_id)
    return now_s + deadline_ms / 1000.0


def request_id_for(request_id: object, live: Container[str]) -> str:
    """`request_id`, checked and not among the `live` ones; a fresh random one for None."""
    if request_id is None:
        fresh = secrets.token_hex(8)
        while fresh in live:
            fresh = secrets.token_hex(8)
        return fresh
    if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_REQUEST_ID_LENGTH:
        raise RequestError(f"request_id must be a non-empty string of at most {MAX_REQUEST_ID_LENGTH} "
                           f"characters, got {request_id!r}")
    if request_id in live:
        raise DuplicateRequestError(f"request id {request_id!r} is already in use by a live request",
                                    request_id=request_id)
    return request_id
