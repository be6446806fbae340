"""The ZeroMQ gateway: `npc-engine serve`'s server, in front of the cluster instead of one engine.

`Server` (the very class `serve` runs: sockets, limits, keepalive, per-client bookkeeping) is
given the cluster behind its two seams: `ClusterEngine` is the `EngineSeam` (templates from the
state service, the replicas' model and frame budget, merged stats) and the `SayService` (a say
goes to the replica chosen by its character id, whose `Dialogue` runs it; drafts stream back),
and `RemoteStore` forwards the state ops to the state service. Games connect to the gateway
exactly as to `serve`.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from ..dialogue import SayResult
from ..engine import Draft, EngineConfig
from ..errors import GenerationError, QueueFullError
from ..models import ModelInfo
from ..templates import Template
from .remote import result_of, unwrapped
from .state import STORE_OPS

__all__ = ["ClusterEngine", "RemoteStore", "result_of"]

_TEMPLATES_FRESH_S = 1.0
# A say whose replica died is sent again, after a pause that lets the router drop the dead
# replica (its state still lands once: see state.py), and only within the retry horizon, far
# inside the state service's key window (characters/keys.py: an hour), so a retry finds the key.
_MAX_SAY_ATTEMPTS = 3
_RETRY_PAUSE_S = 0.5
RETRY_HORIZON_S = 300.0


def _is_replica_lost(exc: BaseException) -> bool:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
    from ray.serve.exceptions import ReplicaUnavailableError
    return isinstance(exc, (ActorDiedError, ActorUnavailableError, RayActorError, ReplicaUnavailableError))


class _StoreCalls:
    def __init__(self, state: Any, prefix: str = "") -> None:
        self._state, self._prefix = state, prefix

    def __getattr__(self, name: str) -> Callable[..., Any]:
        op = self._prefix + name
        if op not in STORE_OPS:
            raise AttributeError(name)
        return lambda *args, **kwargs: result_of(self._state.call.remote(op, args, kwargs))


class RemoteStore(_StoreCalls):
    """The store ops of `Handlers`, answered by the state service."""

    def __init__(self, state: Any) -> None:
        super().__init__(state)
        self.snapshots = _StoreCalls(state, "snapshots.")
        self.path = result_of(state.db_path.remote())


class _ClusterSay:
    """What `Server` holds for an outstanding say: a future and a cancel.

    A cancel never cuts the replica's stream: it asks the replica to cancel the generation, and
    the stream then answers with the truth, "cancelled" when nothing was applied, or the reply
    the replica committed when it had already finished (the cancel came too late)."""

    def __init__(self, request_id: str, cancel_on_replica: Callable[[], Any]) -> None:
        self.request_id = request_id
        self.future: Future[SayResult] = Future()
        self._cancel_on_replica = cancel_on_replica
        self._is_sent = False
        self._is_cancelled = False
        self._lock = threading.Lock()

    def sent(self) -> bool:
        """Record that an attempt goes out; False when the say was cancelled before any did
        (then nothing was ever sent, so nothing can have changed)."""
        with self._lock:
            if self._is_cancelled and not self._is_sent:
                return False
            self._is_sent = True
            is_cancelled = self._is_cancelled
        if is_cancelled:  # a retry after a cancel: it finds the first attempt's reply, or stops
            self._cancel_on_replica()
        return True

    def cancel(self) -> None:
        with self._lock:
            self._is_cancelled = True
            is_sent = self._is_sent
        if is_sent:
            self._cancel_on_replica()


class ClusterEngine:
    """The server's `EngineSeam` and `SayService` over a cluster of replicas."""

    def __init__(self, replicas: Any, state: Any, *, router: str, num_workers: int = 256,
                 max_queued_requests: int = 0) -> None:
        self.replicas = replicas
        self.state = state
        self.router = router
        self.max_queued_requests = max_queued_requests  # for the busy error's details
        self.config: EngineConfig = result_of(replicas.engine_config.remote())  # every replica runs the same
        self._model_info: ModelInfo = result_of(replicas.model_info.remote())
        self._templates: dict[str, Template] = result_of(state.get_templates.remote())
        self._templates_read_s = time.monotonic()
        self._workers = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="npc-gateway-say")
        self._key_prefix = f"gw-{secrets.token_hex(6)}-"
        self._keys = itertools.count(1)

    # -- what Server calls --------------------------------------------------------------------

    def start(self) -> None:
        """The replicas run their own engine threads."""

    def stop(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """The replicas apply their replies themselves; nothing is pending here."""

    def model_info(self) -> ModelInfo:
        return self._model_info

    @property
    def templates(self) -> dict[str, Template]:
        """The registry in the state service, re-read at most once a second (another gateway may
        have registered a template)."""
        now = time.monotonic()
        if now - self._templates_read_s > _TEMPLATES_FRESH_S:
            self._templates = result_of(self.state.get_templates.remote())
            self._templates_read_s = now
        return self._templates

    def register_template(self, template: Template | Mapping[str, Any]) -> Template:
        name = result_of(self.replicas.register_template.remote(_as_template(template)))
        self._templates = result_of(self.state.get_templates.remote())
        self._templates_read_s = time.monotonic()
        return self._templates[name]

    def check_template(self, template: Template | Mapping[str, Any]) -> dict[str, Any]:
        return result_of(self.replicas.check_template.remote(_as_template(template)))

    def routed(self, character_id: str) -> Any:
        """The replica handle for `character_id`: consistent hash on it, or (fallback) the
        multiplexed-model soft affinity."""
        if self.router == "consistent_hash":
            return self.replicas.options(session_id=character_id)
        return self.replicas.options(multiplexed_model_id=character_id)

    def submit(self, character_id: str, speaker_id: str | None, text: str, *, template: Template,
               seed: int | None = None, priority: float = 0.0, deadline_ms: float | None = None,
               request_id: str | None = None, on_draft: Callable[[Draft], None] | None = None,
               is_event: bool = False, trace: bool = False,
               values: Mapping[str, str] | None = None,
               options: Mapping[str, list[str]] | None = None) -> _ClusterSay:
        """Send the say to its character's replica on a worker thread; returns at once. Events are
        admitted (coalesced, rate limited) by the replica's Dialogue: a character's requests go to
        one replica."""
        key = f"{self._key_prefix}{next(self._keys)}"
        say = _ClusterSay(request_id or "", lambda: self.routed(character_id).cancel.remote(key))
        payload = {"character_id": character_id, "speaker_id": speaker_id, "text": text, "template": template.name,
                   "seed": seed, "priority": priority, "deadline_ms": deadline_ms, "stream": on_draft is not None,
                   "key": key, "is_event": is_event, "trace": trace,
                   "values": dict(values or {}), "options": {k: list(v) for k, v in (options or {}).items()}}
        self._workers.submit(self._run_say, say, payload, on_draft)
        return say

    def stats_dict(self) -> dict[str, Any]:
        per_replica = result_of(self.state.replica_stats.remote())
        merged = merge_stats(list(per_replica.values()))
        merged["cluster"] = {"router": self.router, "num_replicas": len(per_replica), "replicas": per_replica}
        return merged

    # -- the say worker -----------------------------------------------------------------------

    def _run_say(self, say: _ClusterSay, payload: dict[str, Any], on_draft: Callable[[Draft], None] | None) -> None:
        try:
            self._stream_say(say, payload, on_draft)
        except BaseException as exc:  # the say's future must always resolve
            if not say.future.done():
                say.future.set_exception(exc)
        if not say.future.done():
            say.future.set_exception(GenerationError("the say ended without a result",
                                                     character_id=payload["character_id"]))

    def _stream_say(self, say: _ClusterSay, payload: dict[str, Any], on_draft: Callable[[Draft], None] | None) -> None:
        from ray.serve.exceptions import BackPressureError, RequestCancelledError

        first_sent_ms = int(time.time() * 1000)
        first_sent_s = time.monotonic()
        for attempt in range(_MAX_SAY_ATTEMPTS):
            if attempt:  # the replica may have applied it before it died: the key finds that reply
                payload = {**payload, "key_first_sent_ms": first_sent_ms}
            if not say.sent():
                say.future.set_result(_cancelled(say, payload))
                return
            try:
                response = self.routed(payload["character_id"]).options(stream=True).say.remote(payload)
                for event in response:
                    if event["event"] == "draft" and on_draft is not None:
                        on_draft(event["draft"])
                    elif event["event"] == "result":
                        say.future.set_result(event["said"])
                        return
                raise GenerationError("the replica ended the say without a result",
                                      character_id=payload["character_id"])
            except BackPressureError as exc:  # the protocol's `busy`
                say.future.set_exception(QueueFullError(
                    f"the replicas for this character are at capacity ({exc}); retry later",
                    max_queued_requests=self.max_queued_requests, character_id=payload["character_id"]))
                return
            except RequestCancelledError:  # Ray cancelled the stream (it is shutting down): not sent on
                raise GenerationError("the cluster cancelled the say before its replica answered; whether it "
                                      "was applied is unknown until the character is read",
                                      character_id=payload["character_id"]) from None
            except Exception as exc:
                cause = unwrapped(exc)
                is_within_horizon = time.monotonic() - first_sent_s < RETRY_HORIZON_S
                if _is_replica_lost(cause) and attempt + 1 < _MAX_SAY_ATTEMPTS and is_within_horizon \
                        and not say.future.done():
                    time.sleep(_RETRY_PAUSE_S * (attempt + 1))
                    continue  # the same idempotency key: the state changes at most once
                say.future.set_exception(cause)
                return


def _as_template(template: Any) -> Template:
    from ..templates import load_template
    return template if isinstance(template, Template) else load_template(template)


def _cancelled(say: _ClusterSay, payload: dict[str, Any]) -> SayResult:
    """The result of a say cancelled before its replica answered: nothing generated or changed."""
    return SayResult.cancelled(say.request_id, payload["character_id"], payload["speaker_id"], payload["template"],
                               seed=payload.get("seed") or 0)


def merge_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """One engine-stats map for several replicas: counts add up, per-frame figures take the
    worst replica, the rest are the first replica's."""
    if not stats:
        return {}
    merged = dict(stats[0])
    for key, value in stats[0].items():
        values = [s[key] for s in stats]
        if isinstance(value, bool) or value is None:
            continue
        if key.startswith("num_") and isinstance(value, int):
            merged[key] = sum(values)
        elif key.startswith("num_") and isinstance(value, dict):
            merged[key] = {k: sum(v.get(k, 0) for v in values) for k in set().union(*values)}
        elif isinstance(value, float) and key.startswith("mean_"):
            merged[key] = sum(values) / len(values)
        elif isinstance(value, float) and key != "frame_budget_ms":
            merged[key] = max(values) if "_ms" in key else sum(values)
    return merged
