"""`Server`: one ZeroMQ ROUTER socket in front of an `Engine` and a `Store`.

Threads: the IO thread owns the socket (decode, validate, dispatch, send); worker threads run
store ops and queue says; the engine's own thread runs frames; its state-writer thread finishes
says. Replies from any thread go through an outbox the IO thread drains, so the socket is only
ever touched by one thread. Sends never block: a slow client's messages wait in its own backlog
(drafts coalesce), a vanished client (a send finds no route) has its work cancelled.
"""

from __future__ import annotations

import errno
import itertools
import logging
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from ..dialogue.seams import EngineSeam, SayService, SayTicket
from ..engine import Draft, FinishReason
from ..errors import (
    ConfigError,
    EngineClosedError,
    ProtocolError,
    UnknownRequestError,
    UnknownTemplateError,
)
from ..protocol import (
    Limits,
    decode,
    draft_event,
    encode,
    error_reply,
    error_reply_fields,
    keepalive_event,
    ok_reply,
    parse_request,
)
from ..protocol import messages as m
from ..protocol import observe as o
from ..protocol.wake import WakePipe
from .clients import Client, ClientTable, Outstanding
from .fair import FairPool
from .handlers import Handlers
from .observe import DEFAULT_CAPACITY, ObserveHub
from .listen import Listener
from .security import check_bind

__all__ = ["Server", "DEFAULT_BIND"]

log = logging.getLogger("npc_engine.server")

DEFAULT_BIND = "tcp://127.0.0.1:5555"
_KEEPALIVE_S = 1.0
_MAX_MESSAGES_PER_WAKE = 256
_GONE_FOR_S = 60.0  # how long messages for a dropped client are discarded unless it talks again


class Server:
    """Serve `engine` and `store` on `bind`. `start()` returns at once; `stop()` shuts down.

    Says go through `says` (a `SayService`); by default a `Dialogue` over `engine` (an `Engine`)
    and `store`, which the server closes when it stops. The cluster gateway passes its own.
    `is_zap_enabled=False` and `is_gated=False` exist only for the benchmark that measures what
    the guards cost: without ZAP, libzmq admits old-protocol peers, which a web page's POST can
    impersonate; without the gate, a message's frames are not bounded in total.
    """

    def __init__(self, engine: EngineSeam, store: Any, *, says: SayService | None = None,
                 bind: str = DEFAULT_BIND, limits: Limits | None = None,
                 curve_keys: str | Path | None = None, is_insecure: bool = False, num_workers: int = 4,
                 max_outstanding_total: int = 4096, observe_capacity: int = DEFAULT_CAPACITY,
                 is_zap_enabled: bool = True, is_gated: bool = True) -> None:
        self.engine = engine
        self.store = store
        self.bind = bind
        self.limits = limits or Limits()
        self.curve_keys = Path(curve_keys) if curve_keys else None
        if not is_zap_enabled and self.curve_keys is not None:
            raise ConfigError("CURVE needs ZAP: is_zap_enabled=False is for loopback benchmarks only")
        check_bind(bind, curve_keys=self.curve_keys, is_insecure=is_insecure)
        self._owns_says = says is None
        if says is None:
            from ..dialogue import Dialogue  # one process: an Engine and a Store
            says = Dialogue(engine, store,  # type: ignore[arg-type]
                            min_event_interval_ms=self.limits.min_event_interval_ms)
        self.says: SayService = says
        self.handlers = Handlers(engine, store, self.limits, curve_enabled=self.curve_keys is not None)
        self.observe = ObserveHub(observe_capacity)
        self.clients = ClientTable(max_outstanding_per_client=self.limits.max_outstanding_per_client)
        self.max_outstanding_total = max_outstanding_total
        self.endpoint: str | None = None
        self._workers = FairPool(num_workers)
        self._outbox: queue.SimpleQueue[tuple[bytes, bytes, str | None]] = queue.SimpleQueue()
        self._wake_pipe = WakePipe()
        self._context = zmq.Context()
        self._socket: zmq.Socket | None = None
        self._listener = Listener(self._context, bind, self.limits, curve_keys=self.curve_keys,
                                  is_zap_enabled=is_zap_enabled, is_gated=is_gated)
        self._thread: threading.Thread | None = None
        self._is_stopping = False
        self._gone: dict[bytes, float] = {}  # identity -> when it was dropped (IO thread only)
        self._engine_id_prefix = f"srv-{secrets.token_hex(4)}-"
        self._engine_ids = itertools.count(1)  # next() on a count is atomic; a generator is not
        self.counters = {"num_requests": 0, "num_errors": 0, "num_dropped_clients": 0, "num_sent": 0}
        self._counters_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Server":
        socket = self._listener.open()
        self.endpoint = self._listener.endpoint
        self._socket = socket
        self.engine.start()
        self._thread = threading.Thread(target=self._io_loop, name="npc-server-io", daemon=True)
        self._thread.start()
        log.info("npc-engine serving on %s", self.endpoint)
        return self

    def stop(self) -> None:
        """Stop taking requests, cancel outstanding says (their replies are sent), close the socket."""
        if self._thread is None:
            return
        for client in self.clients.all():
            self._cancel_all(client)
        deadline = time.monotonic() + 5.0
        while self.clients.num_outstanding() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._is_stopping = True
        self._wake()
        self._thread.join()
        self._thread = None
        self._listener.close()
        self._workers.shutdown()
        self.engine.stop()
        if self._owns_says:
            self.says.close()  # waits for the state writes of finished replies
        self._wake_pipe.close()
        self._context.term()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the IO thread -------------------------------------------------------------------------

    def _io_loop(self) -> None:
        socket = self._socket
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(self._wake_pipe.read_fd, zmq.POLLIN)
        next_keepalive_s = time.monotonic() + _KEEPALIVE_S
        while not self._is_stopping:
            has_backlog = any(c.backlog for c in self.clients.all())
            events = dict(poller.poll(10 if has_backlog else int(_KEEPALIVE_S * 1000)))
            if socket in events:
                for _ in range(_MAX_MESSAGES_PER_WAKE):
                    try:
                        frames = socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        self._on_message(frames)
                    except Exception:  # a bug in one request must not stop the server
                        log.exception("failed to handle a message")
            if self._wake_pipe.read_fd in events:
                self._wake_pipe.drain()
            self._drain_outbox()
            if has_backlog:
                for client in self.clients.all():
                    self._flush(client)
            if time.monotonic() >= next_keepalive_s:
                self._keepalive()
                next_keepalive_s = time.monotonic() + _KEEPALIVE_S
        self._drain_outbox()
        socket.close(linger=500)

    def _on_message(self, frames: list[bytes]) -> None:
        identity = frames[0]
        self._count("num_requests")
        self._gone.pop(identity, None)  # it is talking to us, so it is connected (again)
        client = self.clients.get(identity)
        client.is_gone = False
        request_id, op = None, None
        try:
            if self._is_stopping:
                raise EngineClosedError("the server is stopping")
            if len(frames) != 2:
                raise ProtocolError(f"a request is exactly one frame; got {len(frames) - 1}", code="bad_message")
            message = decode(frames[1], self.limits)
            request, warning = parse_request(message)
            request_id, op = request.request_id, request.op
            self._admit(client, request)
        except Exception as exc:
            request_id = getattr(exc, "request_id", None) or request_id
            self._reply_error(identity, request_id, op, exc, is_tracked=False)
            return
        try:
            if op == "hello":
                self._reply(identity, request_id, op, self.handlers.hello(request, warning), is_tracked=False)
            elif op == "ping":
                self._reply(identity, request_id, op, self.handlers.table["ping"](request), is_tracked=False)
            elif op == "cancel":
                self._cancel(client, request)
            else:
                self._workers.submit(identity, self._run, client, request)
        except Exception as exc:
            self._reply_error(identity, request_id, op, exc)

    def _admit(self, client: Client, request: m.Request) -> None:
        """Track a request as outstanding, or refuse it (duplicate id, per-client or total limits)."""
        with self.clients.lock:
            if request.request_id in client.outstanding:
                raise ProtocolError(f"request id {request.request_id!r} is already outstanding",
                                    code="duplicate_request", request_id=request.request_id)
            if request.op in ("hello", "ping", "cancel"):
                return
            if len(client.outstanding) >= self.limits.max_outstanding_per_client:
                raise ProtocolError(
                    f"this client has {len(client.outstanding)} outstanding requests (the limit); wait for replies",
                    code="busy", details={"limit": "max_outstanding_per_client",
                                          "value": self.limits.max_outstanding_per_client})
            if self.clients.num_outstanding_locked() >= self.max_outstanding_total:
                raise ProtocolError("the server has too many outstanding requests; retry later", code="busy",
                                    details={"limit": "max_outstanding_total", "value": self.max_outstanding_total})
            client.outstanding[request.request_id] = Outstanding(request.request_id, request.op)

    # -- workers ---------------------------------------------------------------------------------

    def _run(self, client: Client, request: m.Request) -> None:
        try:
            if request.op == "say":
                self._submit_say(client, request)
                return
            if request.op == "stats":
                result = self.handlers.stats(self._server_stats())
            elif request.op == "observe":
                self.observe.maybe_frames(self.engine.stats_dict())
                result = self.observe.read(request.since, request.max_events, debug=request.debug)
            else:
                result = self.handlers.table[request.op](request)
        except Exception as exc:
            self._reply_error(client.identity, request.request_id, request.op, exc)
            return
        self._reply(client.identity, request.request_id, request.op, result)

    def _submit_say(self, client: Client, request: m.SayRequest) -> None:
        request_id, identity = request.request_id, client.identity
        template = self.engine.templates.get(request.template)  # names only: never a path on this machine
        if template is None:
            raise UnknownTemplateError(f"no template is registered as {request.template!r} (registered: "
                                       f"{sorted(self.engine.templates) or 'none'})", template=request.template)

        say_id = f"{self._engine_id_prefix}{next(self._engine_ids)}"
        is_observed = self.observe.is_observed  # an observer sees every say's drafts

        def on_draft(draft: Draft) -> None:
            if request.stream:
                self._send(identity, encode(draft_event(request_id, draft.fields, draft.num_steps)),
                           draft_of=request_id)
            if is_observed:
                self.observe.say_draft(say_id, draft)

        is_event = request.event is not None
        text = request.event if is_event else request.text
        if is_observed:  # before submitting: the say's first draft may come from the engine thread at once
            self.observe.say_started(say_id, o.SayStart(
                character_id=request.character_id, speaker_id=request.speaker_id, text=text, is_event=is_event,
                template=template.name, client_request_id=request_id))
        try:
            handle = self.says.submit(
                request.character_id, request.speaker_id, text, template=template, seed=request.seed,
                priority=request.priority, deadline_ms=request.deadline_ms, request_id=say_id,
                on_draft=on_draft if request.stream or is_observed else None, is_event=is_event,
                trace=is_observed and self.observe.is_debug, values=request.values, options=request.options)
        except Exception as exc:  # refused (unknown character, rate limited, ...): the caller replies
            if is_observed:
                fields = error_reply_fields(exc)
                self.observe.say_failed(say_id, fields["code"], fields["message"])
            raise
        with self.clients.lock:
            entry = client.outstanding.get(request_id)
            if entry is not None:
                entry.say_handle = handle
            is_cancelled = entry is None or entry.is_cancel_requested or client.is_gone
        if is_cancelled:
            self._cancel_handle(handle)
        handle.future.add_done_callback(lambda future: self._on_say_done(identity, request, future, say_id))

    def _on_say_done(self, identity: bytes, request: m.SayRequest, future: Any, say_id: str) -> None:
        try:
            said = future.result()
            fill = said.fill.raise_if_failed()
            result = m.SayResult(
                character_id=said.character_id, speaker_id=said.speaker_id,
                finish_reason=FinishReason(said.finish_reason).value, fields=said.fields, changes=said.changes,
                seed=fill.seed, num_steps=fill.num_steps, elapsed_ms=round(fill.elapsed_ms, 3),
                num_prompt_tokens=fill.num_prompt_tokens, num_cached_prompt_tokens=fill.num_cached_prompt_tokens,
                coalesced=said.coalesced)
        except Exception as exc:  # becomes the say's error reply (an internal one is logged)
            self._reply_error(identity, request.request_id, "say", exc, say_id=say_id)
            return
        if self.observe.is_observed:
            self.observe.say_replied(say_id, result.model_dump(mode="json"), said.prompt)
        self._reply(identity, request.request_id, "say", result)

    # -- cancel ------------------------------------------------------------------------------------

    def _cancel(self, client: Client, request: m.CancelRequest) -> None:
        target = request.target_request_id
        with self.clients.lock:
            entry = client.outstanding.get(target)
            if entry is not None and entry.op == "say":
                entry.is_cancel_requested = True
                handle = entry.say_handle
        if entry is None or entry.op != "say":
            why = "is not outstanding (never sent, or already finished)" if entry is None else \
                f"is a {entry.op} request; only say requests can be cancelled"
            self._reply_error(client.identity, request.request_id, "cancel",
                              ProtocolError(f"request {target!r} {why}", code="unknown_request",
                                            details={"target_request_id": target}), is_tracked=False)
            return
        if handle is not None:
            self._cancel_handle(handle)
        self._reply(client.identity, request.request_id, "cancel", m.CancelResult(target_request_id=target),
                    is_tracked=False)

    def _cancel_handle(self, handle: SayTicket) -> None:
        try:
            handle.cancel()
        except UnknownRequestError:  # finished meanwhile: its reply is on the way
            pass

    def _cancel_all(self, client: Client) -> None:
        with self.clients.lock:
            handles = []
            for entry in client.outstanding.values():
                entry.is_cancel_requested = True
                if entry.say_handle is not None:
                    handles.append(entry.say_handle)
        for handle in handles:
            self._cancel_handle(handle)

    # -- sending ---------------------------------------------------------------------------------

    def _reply(self, identity: bytes, request_id: str, op: str, result: Any, *, is_tracked: bool = True) -> None:
        self._send(identity, encode(ok_reply(request_id, op, result)), finishes=request_id if is_tracked else None)

    def _reply_error(self, identity: bytes, request_id: str | None, op: str | None, exc: BaseException,
                     *, is_tracked: bool = True, say_id: str | None = None) -> None:
        self._count("num_errors")
        fields = error_reply_fields(exc)
        if say_id is not None and self.observe.is_observed:
            self.observe.say_failed(say_id, fields["code"], fields["message"])
        if fields["code"] == "internal":
            log.error("request %s (%s) failed", request_id, op, exc_info=exc)
        self._send(identity, encode(error_reply(request_id, op, fields)),
                   finishes=request_id if is_tracked else None)

    def _send(self, identity: bytes, payload: bytes, *, finishes: str | None = None,
              draft_of: str | None = None) -> None:
        """Queue a message for the IO thread (any thread). `finishes` ends an outstanding request."""
        self._outbox.put((identity, payload, draft_of))
        if finishes is not None:
            self.clients.finish(identity, finishes)
        self._wake()

    def _wake(self) -> None:
        self._wake_pipe.wake()

    def _drain_outbox(self) -> None:
        touched = set()
        while True:
            try:
                identity, payload, draft_of = self._outbox.get_nowait()
            except queue.Empty:
                break
            if identity in self._gone:  # late replies and drafts for a client we dropped
                continue
            client = self.clients.get(identity)
            if draft_of is not None:  # a newer draft replaces an unsent one of the same request
                client.backlog = type(client.backlog)(item for item in client.backlog if item[1] != draft_of)
            client.backlog.append((payload, draft_of))
            touched.add(identity)
        for identity in touched:
            self._flush(self.clients.get(identity))

    def _flush(self, client: Client) -> None:
        while client.backlog and not client.is_gone:
            payload, _ = client.backlog[0]
            try:
                self._socket.send_multipart([client.identity, payload], zmq.NOBLOCK)
            except zmq.Again:  # this client reads slowly: keep its messages, serve the others
                if len(client.backlog) > self.clients.max_backlog_per_client:
                    self._drop_client(client, "its backlog is full")
                return
            except zmq.ZMQError as exc:
                why = "it disconnected" if exc.errno == errno.EHOSTUNREACH else f"sending failed: {exc}"
                self._drop_client(client, why)
                return
            client.backlog.popleft()
            client.last_sent_s = time.monotonic()
            self._count("num_sent")
        self.clients.forget_if_idle(client)

    def _drop_client(self, client: Client, why: str) -> None:
        log.info("dropping client %s: %s", client.identity.hex(), why)
        self._count("num_dropped_clients")
        client.is_gone = True
        client.backlog.clear()
        self._gone[client.identity] = time.monotonic()
        self._cancel_all(client)
        self.clients.forget(client)

    def _keepalive(self) -> None:
        """Probe clients with work in flight and nothing sent lately: a vanished one fails the send."""
        now = time.monotonic()
        for identity in [i for i, dropped_s in self._gone.items() if now - dropped_s > _GONE_FOR_S]:
            del self._gone[identity]
        for client in self.clients.all():
            with self.clients.lock:
                request_ids = list(client.outstanding)
            if request_ids and not client.is_gone and now - client.last_sent_s >= _KEEPALIVE_S:
                client.backlog.append((encode(keepalive_event(request_ids[0])), None))
                self._flush(client)

    def _count(self, name: str) -> None:
        with self._counters_lock:  # errors are counted from worker and engine threads too
            self.counters[name] += 1

    def _server_stats(self) -> dict[str, Any]:
        clients = self.clients.all()
        with self._counters_lock:
            counters = dict(self.counters)
        return {**counters, "num_clients": len(clients),
                "num_outstanding": sum(len(c.outstanding) for c in clients), "endpoint": self.endpoint}



