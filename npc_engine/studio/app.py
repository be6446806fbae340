"""The studio's web app: a page and a small JSON API over one protocol client.

The browser never speaks ZeroMQ: every `/api/*` call here is one or two protocol requests to
the server (`serve` or a cluster gateway) through `npc_engine.client.Client`, run on a worker
thread. A server error comes back as HTTP 400 with the server's own `code`, `message` and
`details`; a malformed call to this API as 400 `bad_studio_request`; a server that does not
answer, as 502 `server_unreachable`. `StudioGuard` (guard.py) stands in front of all of it:
allowed hosts, the per-launch token, same-origin calls, JSON bodies within a size limit.
GETs only read; anything that starts or changes something on the server is a POST.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..client import Client
from ..errors import ClientClosedError, ClientTimeoutError, NpcEngineError, ServerError
from .guard import StudioGuard

__all__ = ["create_app", "STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"


class BadBody(Exception):
    """The page sent something this API does not take (a browser-side bug, or a hand-made call)."""


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json") if hasattr(model, "model_dump") else model


def create_app(client: Client, *, token: str, allowed_hosts: set[str] = frozenset()) -> StudioGuard:
    """The studio over `client` (connected to a server; the caller closes it). API calls must carry
    `token`; requests must name this machine's loopback or one of `allowed_hosts` as their Host."""

    async def body(request: Request, *required: str) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError as exc:
            raise BadBody(f"the request body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadBody("the request body must be a JSON object")
        missing = [name for name in required if name not in data]
        if missing:
            raise BadBody(f"missing field(s): {', '.join(missing)}")
        return data

    def api(handler: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(_dump(await handler(request)))
            except BadBody as exc:
                return JSONResponse({"error": {"code": "bad_studio_request", "message": str(exc), "details": {}}},
                                    status_code=400)
            except ServerError as exc:
                return JSONResponse({"error": {"code": exc.code, "message": exc.server_message,
                                               "details": exc.details}}, status_code=400)
            except (ClientTimeoutError, ClientClosedError) as exc:
                return JSONResponse({"error": {"code": "server_unreachable", "message": str(exc), "details": {}}},
                                    status_code=502)
            except NpcEngineError as exc:  # refused by the client before sending (a value off its limits)
                return JSONResponse({"error": {"code": "bad_studio_request", "message": str(exc), "details": {}}},
                                    status_code=400)
        return endpoint

    def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return run_in_threadpool(function, *args, **kwargs)

    async def hello(request: Request) -> Any:
        return await call(client.hello, "npc-engine-studio")

    async def characters(request: Request) -> Any:
        def read() -> list[Any]:
            return [_dump(client.get_character(cid)) for cid in client.list_characters()]
        return {"characters": await call(read)}

    async def speakers(request: Request) -> Any:
        return {"speakers": [_dump(s) for s in await call(client.list_speakers)]}

    async def templates(request: Request) -> Any:
        listed = await call(client.list_templates)
        return {"templates": [t.model_dump(mode="json") for t in listed]}

    async def stats(request: Request) -> Any:
        return await call(client.stats)

    async def observe(request: Request) -> Any:
        """A POST: polling starts the server's recording, and `debug` its per-step tracing."""
        data = await body(request)
        since, max_events, is_debug = data.get("since", 0), data.get("max_events", 200), data.get("debug", False)
        if type(since) is not int or type(max_events) is not int or type(is_debug) is not bool:
            raise BadBody("since and max_events must be integers and debug a boolean")
        return await call(client.observe, max(0, since), max_events=max_events, debug=is_debug)

    async def say(request: Request) -> Any:
        data = await body(request, "character_id", "speaker_id", "text", "template")
        return await call(client.say, data["character_id"], data["speaker_id"], data["text"],
                          template=data["template"], seed=data.get("seed"))

    async def check_template(request: Request) -> Any:
        data = await body(request, "template")
        return await call(client.check_template, _template_of(data))

    async def try_template(request: Request) -> Any:
        """Register the edited template (replacing one of its name), then say a line with it."""
        data = await body(request, "template", "character_id", "speaker_id", "text")
        name = await call(client.register_template, _template_of(data))
        return await call(client.say, data["character_id"], data["speaker_id"], data["text"], template=name)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    routes = [
        Route("/", index),
        Route("/api/hello", api(hello)),
        Route("/api/characters", api(characters)),
        Route("/api/speakers", api(speakers)),
        Route("/api/templates", api(templates)),
        Route("/api/stats", api(stats)),
        Route("/api/observe", api(observe), methods=["POST"]),
        Route("/api/say", api(say), methods=["POST"]),
        Route("/api/template/check", api(check_template), methods=["POST"]),
        Route("/api/template/try", api(try_template), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return StudioGuard(Starlette(routes=routes), token=token, allowed_hosts=set(allowed_hosts))


def _template_of(data: dict[str, Any]) -> dict[str, Any]:
    template = data["template"]
    if not isinstance(template, dict):
        raise BadBody("template must be a JSON object (a template's fields, see docs/templates.md)")
    return template
