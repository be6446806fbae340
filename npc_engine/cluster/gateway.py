"""The ZeroMQ gateway: `npc-engine serve`'s server, in front of the cluster instead of one engine.

`Server` (the very class `serve` runs: sockets, limits, keepalive, per-client bookkeeping) is
given two stand-ins: `ClusterEngine` forwards a say to the replica chosen by its character id,
streaming drafts back, and `RemoteStore` forwards the state ops to the state service. Games
connect to the gateway exactly as to `serve`.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, Callable

from ..characters.effects import StateChange
from ..engine import EngineConfig
from ..engine.request import Draft
from ..errors import GenerationError, QueueFullError
from ..templates import Template
from .state import STORE_OPS

__all__ = ["ClusterEngine", "RemoteStore", "result_of"]

_TEMPLATES_FRESH_S = 1.0
# A say whose replica died is sent again, after a pause that lets the router drop the dead
# replica (its state still lands once: see state.py).
_MAX_SAY_ATTEMPTS = 3
_RETRY_PAUSE_S = 0.5


def result_of(response: Any) -> Any:
    """`response.result()`, raising the replica's own exception rather than Ray's wrapper."""
    try:
        return response.result()
    except Exception as exc:
        raise _unwrapped(exc) from None


def _unwrapped(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else exc


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


@dataclasses.dataclass
class _SayDone:
    character_id: str
    speaker_id: str
    request_id: str
    finish_reason: str
    fields: dict[str, Any] | None
    changes: list[StateChange]
    fill: Any


class _ClusterSay:
    """What `Server` holds for an outstanding say: a future and a cancel."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.future: Future[_SayDone] = Future()
        self._response: Any = None
        self._is_cancelled = False
        self._lock = threading.Lock()

    def attach(self, response: Any) -> None:
        with self._lock:
            self._response = response
            if self._is_cancelled:
                response.cancel()

    def cancel(self) -> None:
        with self._lock:
            self._is_cancelled = True
            if self._response is not None:
                self._response.cancel()


class ClusterEngine:
    """The part of `Engine` that `Server` and `Handlers` use, over a cluster of replicas."""

    def __init__(self, replicas: Any, state: Any, *, router: str, num_workers: int = 256,
                 max_queued_requests: int = 0) -> None:
        self.replicas = replicas
        self.state = state
        self.router = router
        self.max_queued_requests = max_queued_requests  # for the busy error's details
        self.config = EngineConfig()
        self.dialogue: Any = None
        info = result_of(replicas.model_info.remote())
        self.backend = SimpleNamespace(info=lambda: info)
        self._templates: dict[str, Template] = result_of(state.get_templates.remote())
        self._templates_read_s = time.monotonic()
        self._workers = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="npc-gateway-say")
        self._key_prefix = f"gw-{secrets.token_hex(6)}-"
        self._keys = itertools.count(1)

    # -- what Server calls --------------------------------------------------------------------

    def use_store(self, store: Any) -> None:
        self.dialogue = SimpleNamespace(store=store)

    def start(self) -> None:
        """The replicas run their own engine threads."""

    def stop(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)

    @property
    def templates(self) -> dict[str, Template]:
        """The registry in the state service, re-read at most once a second (another gateway may
        have registered a template)."""
        now = time.monotonic()
        if now - self._templates_read_s > _TEMPLATES_FRESH_S:
            self._templates = result_of(self.state.get_templates.remote())
            self._templates_read_s = now
        return self._templates

    def register_template(self, template: Any) -> Template:
        name = result_of(self.replicas.register_template.remote(_as_template(template)))
        self._templates = result_of(self.state.get_templates.remote())
        self._templates_read_s = time.monotonic()
        return self._templates[name]

    def routed(self, character_id: str) -> Any:
        """The replica handle for `character_id`: consistent hash on it, or (fallback) the
        multiplexed-model soft affinity."""
        if self.router == "consistent_hash":
            return self.replicas.options(session_id=character_id)
        return self.replicas.options(multiplexed_model_id=character_id)

    def submit_say(self, character_id: str, speaker_id: str, text: str, *, template: str, seed: int | None = None,
                   priority: float = 0.0, deadline_ms: float | None = None, request_id: str | None = None,
                   on_draft: Callable[[Draft], None] | None = None) -> _ClusterSay:
        say = _ClusterSay(request_id or "")
        payload = {"character_id": character_id, "speaker_id": speaker_id, "text": text, "template": template,
                   "seed": seed, "priority": priority, "deadline_ms": deadline_ms, "stream": on_draft is not None,
                   "key": f"{self._key_prefix}{next(self._keys)}"}
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

        for attempt in range(_MAX_SAY_ATTEMPTS):
            try:
                response = self.routed(payload["character_id"]).options(stream=True).say.remote(payload)
                say.attach(response)
                for event in response:
                    if event["event"] == "draft" and on_draft is not None:
                        on_draft(Draft(say.request_id, event["fields"], event["num_steps"], payload["character_id"]))
                    elif event["event"] == "result":
                        say.future.set_result(self._done(say, payload, event))
                        return
                raise GenerationError("the replica ended the say without a result",
                                      character_id=payload["character_id"])
            except BackPressureError as exc:  # the protocol's `busy`
                say.future.set_exception(QueueFullError(
                    f"the replicas for this character are at capacity ({exc}); retry later",
                    max_queued_requests=self.max_queued_requests, character_id=payload["character_id"]))
                return
            except RequestCancelledError:
                say.future.set_result(_SayDone(payload["character_id"], payload["speaker_id"], say.request_id,
                                               "cancelled", None, [], _cancelled_fill(payload)))
                return
            except Exception as exc:
                cause = _unwrapped(exc)
                if _is_replica_lost(cause) and attempt + 1 < _MAX_SAY_ATTEMPTS and not say.future.done():
                    time.sleep(_RETRY_PAUSE_S * (attempt + 1))
                    continue  # the same idempotency key: the state changes at most once
                say.future.set_exception(cause)
                return

    @staticmethod
    def _done(say: _ClusterSay, payload: dict[str, Any], event: dict[str, Any]) -> _SayDone:
        fill = event["fill"]
        fields = fill.fields if fill.finish_reason in ("complete", "deadline") else None
        return _SayDone(payload["character_id"], payload["speaker_id"], say.request_id, fill.finish_reason,
                        fields, list(event["changes"]), fill)


def _as_template(template: Any) -> Template:
    from ..templates import load_template
    return template if isinstance(template, Template) else load_template(template)


def _cancelled_fill(payload: dict[str, Any]) -> Any:
    return SimpleNamespace(seed=payload.get("seed") or 0, num_steps=0, elapsed_ms=0.0, num_prompt_tokens=0,
                           num_cached_prompt_tokens=0, error=None)


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
