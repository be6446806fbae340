"""`Client` (blocking) and `AsyncClient` (asyncio): what a Python game imports to talk to the server.

    with Client("tcp://127.0.0.1:5555") as npc:
        npc.hello()
        reply = npc.say("brom", "player", "Any work?", template="shopkeeper_reply")
        for draft in npc.say_stream("brom", "player", "And pay?", template="shopkeeper_reply"):
            show(draft.fields)

Both are thread-safe and share one connection per client, and both take their op methods from
one table (`Ops`): `AsyncClient`'s return awaitables of what `Client`'s return. Results and
events are read tolerantly: a newer minor server may add fields and event kinds (the protocol's
promise), and this client ignores what it does not know. Errors: `ServerError` (with the wire
`code`; `BusyError`, `VersionMismatchError`), `ClientTimeoutError`, `ClientClosedError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from ..characters.model import Character, SnapshotInfo, Speaker, WorldFact
from ..errors import BusyError, ClientClosedError, ClientTimeoutError, ServerError, VersionMismatchError
from ..protocol import RESULTS, DraftBody
from ..protocol import messages as m
from ..protocol.chunks import from_chunks, to_chunks
from ..protocol.observe import ObserveResult
from ..templates.spec import Template, load_template
from .connection import Connection

__all__ = ["Client", "AsyncClient", "Ops", "SayStream"]

_ERRORS = {"busy": BusyError, "unsupported_version": VersionMismatchError}
_DONE = object()


def _result(op: str, reply: dict[str, Any]) -> BaseModel:
    if not reply.get("ok"):
        error = reply.get("error") or {}
        code = str(error.get("code", "internal"))
        raise _ERRORS.get(code, ServerError)(str(error.get("message", "")), code=code,
                                             details=error.get("details") or {}, request_id=reply.get("request_id"))
    return RESULTS[op].model_validate(reply.get("result") or {}, extra="ignore")


def _draft_of(event: dict[str, Any]) -> DraftBody | None:
    """The draft a `say` event carries; None for an event kind this client does not know."""
    if event.get("event") != "draft":
        return None
    return DraftBody.model_validate(event.get("draft"), extra="ignore")


def _template_map(template: Template | Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(template, Template):
        return template.model_dump(mode="json")
    if isinstance(template, Mapping):
        return dict(template)
    return load_template(template).model_dump(mode="json")


def _say_fields(character_id: str, speaker_id: str | None, text: str, template: str, seed: int | None,
                priority: float, deadline_ms: float | None, stream: bool, *, is_event: bool = False,
                values: Mapping[str, str] | None = None,
                options: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"character_id": character_id, "event" if is_event else "text": text,
                              "template": template, "priority": float(priority), "stream": stream}
    if speaker_id is not None:
        fields["speaker_id"] = speaker_id
    if seed is not None:
        fields["seed"] = seed
    if deadline_ms is not None:
        fields["deadline_ms"] = float(deadline_ms)
    if values:  # since 1.3; left out when empty, so a say to an older server stays valid
        fields["values"] = dict(values)
    if options:  # since 1.3
        fields["options"] = {slot: list(offered) for slot, offered in options.items()}
    return fields


class Ops:
    """Every request-reply op, once. A subclass says how a call is made: `Client._call` sends and
    waits; `AsyncClient._call` returns an awaitable of the same value."""

    def _call(self, op: str, *, extract: Callable[[Any], Any] | None, timeout: float | None = None,
              is_say: bool = False, **fields: Any) -> Any:
        raise NotImplementedError

    def hello(self, client_name: str = "npc-engine-python") -> m.HelloResult:
        from .. import __version__
        return self._call("hello", client_name=client_name, client_version=__version__, extract=None)

    def ping(self) -> m.PingResult:
        return self._call("ping", extract=None)

    def upsert_character(self, character: Character | Mapping[str, Any]) -> Character:
        data = character.model_dump(mode="json", exclude_unset=True) | {"id": character.id} \
            if isinstance(character, Character) else dict(character)
        return self._call("character.upsert", character=data, extract=lambda r: r.character)

    def get_character(self, character_id: str) -> Character:
        return self._call("character.get", character_id=character_id, extract=lambda r: r.character)

    def list_characters(self) -> list[str]:
        return self._call("character.list", extract=lambda r: r.character_ids)

    def delete_character(self, character_id: str) -> None:
        return self._call("character.delete", character_id=character_id, extract=lambda r: None)

    def upsert_speaker(self, speaker_id: str, name: str, description: str = "") -> Speaker:
        speaker = {"id": speaker_id, "name": name, "description": description}
        return self._call("speaker.upsert", speaker=speaker, extract=lambda r: r.speaker)

    def list_speakers(self) -> list[Speaker]:
        return self._call("speaker.list", extract=lambda r: r.speakers)

    def delete_speaker(self, speaker_id: str) -> bool:
        return self._call("speaker.delete", speaker_id=speaker_id, extract=lambda r: r.is_deleted)

    def set_world_fact(self, key: str, text: str, salience: float = 0.5) -> WorldFact:
        return self._call("world.set", key=key, text=text, salience=float(salience), extract=lambda r: r.fact)

    def get_world_facts(self, key: str | None = None) -> list[WorldFact]:
        return self._call("world.get", **({"key": key} if key is not None else {}), extract=lambda r: r.facts)

    def delete_world_fact(self, key: str) -> bool:
        return self._call("world.delete", key=key, extract=lambda r: r.is_deleted)

    def register_template(self, template: Template | Mapping[str, Any] | str | Path) -> str:
        return self._call("template.register", template=_template_map(template), extract=lambda r: r.name)

    def check_template(self, template: Template | Mapping[str, Any] | str | Path) -> m.TemplateCheckResult:
        """Validate and compile a template on the server without registering it (protocol 1.2):
        its canvas layout, or ServerError with the server's own template error."""
        return self._call("template.check", template=_template_map(template), extract=None)

    def list_templates(self) -> list[Template]:
        return self._call("template.list", extract=lambda r: [Template.model_validate(t) for t in r.templates])

    def say(self, character_id: str, speaker_id: str, text: str, *, template: str, seed: int | None = None,
            priority: float = 0.0, deadline_ms: float | None = None, timeout: float | None = None,
            values: Mapping[str, str] | None = None, options: Mapping[str, Sequence[str]] | None = None) -> m.SayResult:
        """The reply: fields, finish_reason and the state changes applied (a timed-out say is
        cancelled on the server). Protocol 1.3: `values` fill the template's pattern placeholders,
        `options` replace choice slots' options for this say (e.g. the items the NPC has now)."""
        fields = _say_fields(character_id, speaker_id, text, template, seed, priority, deadline_ms, False,
                             values=values, options=options)
        return self._call("say", extract=None, timeout=timeout, is_say=True, **fields)

    def react(self, character_id: str, event: str, *, template: str, causer_id: str | None = None,
              seed: int | None = None, priority: float = 0.0, deadline_ms: float | None = None,
              timeout: float | None = None, values: Mapping[str, str] | None = None,
              options: Mapping[str, Sequence[str]] | None = None) -> m.SayResult:
        """The character's reply to a game event ("Aria walks into the forge"), caused by
        `causer_id` or by no one (protocol 1.1: a `say` with `event`). An event while the
        character answers another is answered with that reply (`coalesced`); one sooner than the
        server's `min_event_interval_ms` raises ServerError code `rate_limited`."""
        fields = _say_fields(character_id, causer_id, event, template, seed, priority, deadline_ms, False,
                             is_event=True, values=values, options=options)
        return self._call("say", extract=None, timeout=timeout, is_say=True, **fields)

    def cancel(self, request_id: str) -> None:
        """Cancel an outstanding say of this client; its reply then has finish_reason 'cancelled'."""
        return self._call("cancel", target_request_id=request_id, extract=lambda r: None)

    def save_snapshot(self, name: str, character_id: str | None = None) -> SnapshotInfo:
        extra = {"character_id": character_id} if character_id is not None else {}
        return self._call("snapshot.save", name=name, **extra, extract=lambda r: r.snapshot)

    def load_snapshot(self, name: str) -> SnapshotInfo:
        return self._call("snapshot.load", name=name, extract=lambda r: r.snapshot)

    def export_snapshot(self, name: str) -> bytes:
        """A save slot's bytes, for the game's own save file (protocol 1.1); `import_snapshot`
        takes them back, checked (format, schema version, checksum) before anything changes."""
        return self._call("snapshot.export", name=name, extract=lambda r: from_chunks(r.chunks))

    def import_snapshot(self, data: bytes, name: str | None = None) -> SnapshotInfo:
        """Store bytes from `export_snapshot` as a slot (under `name`, default its own); then
        `load_snapshot` applies it. A damaged or foreign payload: ServerError code snapshot_error."""
        extra = {"name": name} if name is not None else {}
        return self._call("snapshot.import", chunks=to_chunks(bytes(data)), **extra, extract=lambda r: r.snapshot)

    def list_snapshots(self) -> list[SnapshotInfo]:
        return self._call("snapshot.list", extract=lambda r: r.snapshots)

    def delete_snapshot(self, name: str) -> None:
        return self._call("snapshot.delete", name=name, extract=lambda r: None)

    def stats(self) -> m.StatsResult:
        return self._call("stats", extract=None)

    def observe(self, since: int = 0, *, max_events: int = 200, debug: bool = False) -> ObserveResult:
        """The server's activity from event `since` on (protocol 1.2; see protocol/observe.py):
        pass the result's `next_seq` as the next `since`. With `debug`, says starting in the next
        5 s record each step's canvas."""
        return self._call("observe", since=since, max_events=max_events, debug=debug, extract=None)


class SayStream:
    """Iterate a `say`'s drafts (`DraftBody`: fields, num_steps); then `.result()` is the reply."""

    def __init__(self, client: "Client", request_id: str, future: concurrent.futures.Future,
                 drafts: queue.SimpleQueue, timeout_s: float | None) -> None:
        self.client = client
        self.request_id = request_id
        self._future = future
        self._drafts = drafts
        self._timeout_s = timeout_s
        future.add_done_callback(lambda _: drafts.put(_DONE))

    def __iter__(self) -> Iterator[DraftBody]:
        while True:
            try:
                item = self._drafts.get(timeout=self._timeout_s)
            except queue.Empty:
                self.client._give_up(self.request_id, "say", is_say=True)
                raise ClientTimeoutError(f"no draft or reply within {self._timeout_s} s",
                                         request_id=self.request_id) from None
            if item is _DONE:
                return
            yield item

    def cancel(self) -> None:
        self.client.cancel(self.request_id)

    def result(self, timeout: float | None = None) -> m.SayResult:
        return self.client._wait("say", self.request_id, self._future, timeout or self._timeout_s, is_say=True)


class Client(Ops):
    """Blocking client. `timeout_s` bounds every call (a timed-out `say` is cancelled on the server)."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5555", *, timeout_s: float = 30.0,
                 curve_keys: str | Path | None = None) -> None:
        self.timeout_s = timeout_s
        self.connection = Connection(endpoint, curve_keys=curve_keys)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def reconnect(self) -> None:
        """Open a fresh connection (new identity). Requests in flight fail with ClientClosedError."""
        self.connection.reconnect()

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> BaseModel:
        """Send any op and wait for its typed result."""
        request_id, future = self.connection.submit(op, fields)
        return self._wait(op, request_id, future, timeout, is_say=op == "say")

    def say_stream(self, character_id: str, speaker_id: str, text: str, *, template: str,
                   seed: int | None = None, priority: float = 0.0, deadline_ms: float | None = None,
                   timeout: float | None = None, values: Mapping[str, str] | None = None,
                   options: Mapping[str, Sequence[str]] | None = None) -> SayStream:
        """Iterate drafts as they come; `.result()` afterwards (or at any time) is the reply."""
        drafts: queue.SimpleQueue = queue.SimpleQueue()

        def on_event(event: dict[str, Any]) -> None:
            draft = _draft_of(event)
            if draft is not None:
                drafts.put(draft)

        fields = _say_fields(character_id, speaker_id, text, template, seed, priority, deadline_ms, True,
                             values=values, options=options)
        request_id, future = self.connection.submit("say", fields, on_event=on_event)
        return SayStream(self, request_id, future, drafts, self.timeout_s if timeout is None else timeout)

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, op: str, *, extract: Callable[[Any], Any] | None, timeout: float | None = None,
              is_say: bool = False, **fields: Any) -> Any:
        request_id, future = self.connection.submit(op, fields)
        result = self._wait(op, request_id, future, timeout, is_say=is_say)
        return result if extract is None else extract(result)

    def _wait(self, op: str, request_id: str, future: concurrent.futures.Future, timeout: float | None,
              *, is_say: bool = False) -> Any:
        timeout = self.timeout_s if timeout is None else timeout
        try:
            reply = future.result(timeout)
        except concurrent.futures.TimeoutError:
            self._give_up(request_id, op, is_say=is_say)
            raise ClientTimeoutError(f"{op} got no reply within {timeout} s", request_id=request_id) from None
        return _result(op, reply)

    def _give_up(self, request_id: str, op: str, *, is_say: bool) -> None:
        self.connection.forget(request_id)
        if is_say:  # free the server's work; its reply, if any, is ignored
            try:
                self.connection.submit("cancel", {"target_request_id": request_id})
            except ClientClosedError:  # closed meanwhile: the server cancels a vanished client's work
                pass


class AsyncClient(Ops):
    """asyncio flavour: the same op methods as `Client` (each returns an awaitable of what
    `Client`'s returns); `say_stream` is an async iterator."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5555", *, timeout_s: float = 30.0,
                 curve_keys: str | Path | None = None) -> None:
        self.sync = Client(endpoint, timeout_s=timeout_s, curve_keys=curve_keys)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def reconnect(self) -> None:
        """Open a fresh connection (new identity). Requests in flight fail with ClientClosedError."""
        self.sync.reconnect()

    async def request(self, op: str, timeout: float | None = None, **fields: Any) -> Any:
        request_id, future = self.sync.connection.submit(op, fields)
        return await self._wait(op, request_id, future, timeout, is_say=op == "say")

    async def say_stream(self, character_id: str, speaker_id: str, text: str, *, template: str,
                         seed: int | None = None, priority: float = 0.0, deadline_ms: float | None = None,
                         timeout: float | None = None, values: Mapping[str, str] | None = None,
                         options: Mapping[str, Sequence[str]] | None = None) -> AsyncIterator[DraftBody | m.SayResult]:
        """Yields each draft, then the final `SayResult` as the last item."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def on_event(event: dict[str, Any]) -> None:
            draft = _draft_of(event)
            if draft is not None:
                loop.call_soon_threadsafe(events.put_nowait, draft)

        fields = _say_fields(character_id, speaker_id, text, template, seed, priority, deadline_ms, True,
                             values=values, options=options)
        request_id, future = self.sync.connection.submit("say", fields, on_event=on_event)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(events.put_nowait, _DONE))
        timeout = self.sync.timeout_s if timeout is None else timeout
        while True:
            try:
                item = await asyncio.wait_for(events.get(), timeout)
            except asyncio.TimeoutError:
                self.sync._give_up(request_id, "say", is_say=True)
                raise ClientTimeoutError(f"no draft or reply within {timeout} s", request_id=request_id) from None
            if item is _DONE:
                break
            yield item
        yield _result("say", future.result())

    def _call(self, op: str, *, extract: Callable[[Any], Any] | None, timeout: float | None = None,
              is_say: bool = False, **fields: Any) -> Any:
        async def call() -> Any:
            request_id, future = self.sync.connection.submit(op, fields)
            result = await self._wait(op, request_id, future, timeout, is_say=is_say)
            return result if extract is None else extract(result)
        return call()

    async def _wait(self, op: str, request_id: str, future: concurrent.futures.Future, timeout: float | None,
                    *, is_say: bool = False) -> Any:
        timeout = self.sync.timeout_s if timeout is None else timeout
        try:
            reply = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.TimeoutError:
            self.sync._give_up(request_id, op, is_say=is_say)
            raise ClientTimeoutError(f"{op} got no reply within {timeout} s", request_id=request_id) from None
        return _result(op, reply)
