"""Wire error codes: the one table that turns exceptions into `{code, message, details}`.

schemas/PROTOCOL.md documents each code; a test checks that every code here appears there.
"""

from __future__ import annotations

from typing import Any

from .. import errors

__all__ = ["ERROR_CODES", "error_reply_fields"]

# code -> when it is sent. Order matters only for readability.
ERROR_CODES: dict[str, str] = {
    "bad_message": "the frame is not one msgpack map with string keys (garbage, ext types, several frames)",
    "too_large": "the message, or a string, array or map in it, is over the server's limits",
    "too_deep": "the message nests maps/arrays deeper than the server's limit",
    "invalid_request": "fields are missing, of the wrong type or out of range (details.errors lists them)",
    "unknown_op": "the op is not one this server knows (details.supported_ops lists them)",
    "unsupported_version": "the protocol major version differs from the server's",
    "duplicate_request": "this client already has an outstanding request with this request_id",
    "busy": "a limit on outstanding or queued work is reached; retry later (details.limit names it)",
    "rate_limited": "a say with an event came within the character's minimum event interval, or while it "
                    "answers an event with another template (details.retry_after_ms); nothing changed",
    "unknown_character": "no character has this id",
    "unknown_speaker": "the speaker is neither a character nor a registered speaker",
    "unknown_template": "no template is registered under this name",
    "unknown_snapshot": "no snapshot has this name",
    "unknown_request": "cancel named a request that is not outstanding (never sent, or finished)",
    "state_changed": "a save was loaded, the character deleted or the world changed while the reply was "
                     "generated; nothing was applied, the game may ask again (details.scopes)",
    "key_expired": "a retried reply's idempotency key is older than the key window; it is not applied "
                   "again (it may have landed); nothing changed",
    "invalid_state": "a character, speaker or world value is invalid (details.field names it)",
    "invalid_template": "the template is invalid or does not fit the model's canvas",
    "invalid_prompt": "the utterance is empty or too long, or the prompt cannot fit its budget",
    "snapshot_error": "the snapshot cannot be used (damaged, or written by a newer schema)",
    "generation_failed": "the generation failed inside the engine (a fault, not the request)",
    "store_error": "the state database cannot be used",
    "shutting_down": "the server is stopping and takes no new work",
    "internal": "an unexpected server error; the message says what failed",
}

# Most specific first: the first match wins.
_BY_EXCEPTION: list[tuple[type[BaseException], str]] = [
    (errors.ProtocolError, ""),  # carries its own code
    (errors.UnknownCharacterError, "unknown_character"),
    (errors.UnknownSpeakerError, "unknown_speaker"),
    (errors.UnknownSnapshotError, "unknown_snapshot"),
    (errors.StateChangedError, "state_changed"),
    (errors.KeyExpiredError, "key_expired"),
    (errors.UnknownRequestError, "unknown_request"),
    (errors.UnknownTemplateError, "unknown_template"),
    (errors.DuplicateRequestError, "duplicate_request"),
    (errors.QueueFullError, "busy"),
    (errors.EngineClosedError, "shutting_down"),
    (errors.RateLimitedError, "rate_limited"),
    (errors.DeadlineError, "invalid_request"),
    (errors.RequestError, "invalid_request"),
    (errors.StateError, "invalid_state"),
    (errors.TemplateError, "invalid_template"),
    (errors.PromptError, "invalid_prompt"),
    (errors.SnapshotError, "snapshot_error"),
    (errors.GenerationError, "generation_failed"),
    (errors.StoreError, "store_error"),
]


def error_reply_fields(exc: BaseException) -> dict[str, Any]:
    """`{code, message, details}` for an exception (unexpected ones become `internal`)."""
    details: dict[str, Any] = {}
    code = "internal"
    for kind, mapped in _BY_EXCEPTION:
        if isinstance(exc, kind):
            code = getattr(exc, "code", "") or mapped
            break
    if isinstance(exc, errors.ProtocolError):
        details = dict(exc.details)
    for attribute in ("field", "template", "slot", "speaker_id", "character_id", "max_queued_requests",
                      "snapshot_version", "supported_version", "retry_after_ms", "scopes"):
        value = getattr(exc, attribute, None)
        if value is not None and attribute not in details:
            details[attribute] = value
    if isinstance(exc, errors.QueueFullError):
        details["limit"] = "max_queued_requests"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if code == "internal":
        message = f"{type(exc).__name__}: {message}"
    return {"code": code, "message": message, "details": details}
