"""The cluster on Ray Serve: engine replicas, the state service and the ZeroMQ gateway.

- `EngineReplicaDeployment`: N replicas, one GPU each when asked (`ray_actor_options`), CPU
  otherwise; `max_ongoing_requests` well above Ray's default so a replica's engine can batch,
  `max_queued_requests` bounded so an overload becomes the protocol's `busy`.
- Character affinity: Ray's experimental consistent-hash request router keyed by
  `session_id = character_id`; where it cannot be imported, multiplexed model ids (the character
  id) give a soft affinity. `stats` says which one runs (`engine.cluster.router`).
- `StateDeployment`: one replica owning the SQLite state of record (see `state.py`).
- `GatewayDeployment`: binds the ROUTER socket and runs `npc_engine.server.Server` over the
  cluster (see `gateway.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import os
import threading
import time
from typing import Any

from ray import serve

from ..errors import ClusterError
from .gateway import ClusterEngine, RemoteStore, result_of
from .replica import EngineReplica, ReplicaOptions
from .state import StateService

__all__ = ["APP_NAME", "ClusterOptions", "ROUTER_CLASS", "app_from_args", "build_app", "connect_gateway", "deploy",
           "pick_router", "start_cluster"]

ROUTER_CLASS = "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter"
APP_NAME = "npc-engine"


def pick_router() -> str:
    """"consistent_hash" when Ray ships the router (2.60+) and it is not switched off with
    NPC_CLUSTER_ROUTER=multiplexed, else "multiplexed"."""
    if os.environ.get("NPC_CLUSTER_ROUTER") == "multiplexed":
        return "multiplexed"
    module, _, name = ROUTER_CLASS.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return "multiplexed"
    return "consistent_hash"


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    num_replicas: int = 2
    bind: str = "tcp://127.0.0.1:5555"
    replica: ReplicaOptions = ReplicaOptions()
    db_path: str | None = None
    template_dirs: tuple[str, ...] = ()
    num_cpus_per_replica: float = 1.0
    num_gpus_per_replica: float = 0.0
    max_ongoing_requests: int = 256     # Ray's default is 5; an engine batches far more
    max_queued_requests: int = 64       # beyond this a say is refused with `busy`
    router: str | None = None           # None: pick_router()
    gateway_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # Server kwargs


@serve.deployment(name="NpcState", num_replicas=1, max_ongoing_requests=1024, ray_actor_options={"num_cpus": 0})
class StateDeployment(StateService):
    pass


class _MultiplexedReplica(EngineReplica):
    """The fallback affinity: each character id is a multiplexed "model" this replica holds."""

    router = "multiplexed"

    @serve.multiplexed(max_num_models_per_replica=100_000)
    async def _character(self, character_id: str) -> str:
        return character_id

    async def say(self, request: dict[str, Any]):
        model_id = serve.get_multiplexed_model_id()
        if model_id:
            await self._character(model_id)
        async for event in super().say(request):
            yield event


@serve.deployment(name="NpcGateway", num_replicas=1, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
class GatewayDeployment:
    """Starts the server on its own thread: the calls it makes to build itself block, and a
    Serve constructor runs on the replica's event loop."""

    def __init__(self, replicas: Any, state: Any, bind: str, router: str, server_options: dict[str, Any]) -> None:
        self.server: Any = None
        self.engine: ClusterEngine | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._start, args=(replicas, state, bind, router, server_options),
                         name="npc-gateway-start", daemon=True).start()

    def _start(self, replicas: Any, state: Any, bind: str, router: str, server_options: dict[str, Any]) -> None:
        from ..server import Server

        try:
            self.engine = ClusterEngine(replicas, state, router=router)
            self.server = Server(self.engine, RemoteStore(state), says=self.engine, bind=bind,
                                 **server_options).start()
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def endpoint(self) -> str:
        """The bound endpoint, once the server is up (raises what stopped it from starting)."""
        await asyncio.get_running_loop().run_in_executor(None, self._ready.wait)
        if self._error is not None:
            raise self._error
        return self.server.endpoint

    async def router(self) -> str:
        await self.endpoint()
        return self.engine.router

    async def check_health(self) -> None:
        if self._error is not None:
            raise ClusterError(f"the gateway did not start: {self._error}")

    def __del__(self) -> None:
        if self.server is not None:
            self.server.stop()


def build_app(options: ClusterOptions) -> Any:
    router = options.router or pick_router()
    replica_class = EngineReplica if router == "consistent_hash" else _MultiplexedReplica
    deployment_options: dict[str, Any] = {
        "name": "NpcEngineReplica", "num_replicas": options.num_replicas,
        "max_ongoing_requests": options.max_ongoing_requests, "max_queued_requests": options.max_queued_requests,
        "ray_actor_options": {"num_cpus": options.num_cpus_per_replica, "num_gpus": options.num_gpus_per_replica},
    }
    if router == "consistent_hash":
        from ray.serve.config import RequestRouterConfig
        deployment_options["request_router_config"] = RequestRouterConfig(request_router_class=ROUTER_CLASS)
    replicas = serve.deployment(replica_class).options(**deployment_options)
    state = StateDeployment.bind(options.db_path, list(options.template_dirs))
    return GatewayDeployment.bind(replicas.bind(state, options.replica), state, options.bind, router,
                                  options.gateway_options)


def app_from_args(args: dict[str, Any]) -> Any:
    """The import-path builder `deploy` names: the same app from JSON-able options."""
    raw = dict(args["options"])
    raw["replica"] = ReplicaOptions(**raw["replica"])
    raw["template_dirs"] = tuple(raw["template_dirs"])
    return build_app(ClusterOptions(**raw))


def deploy(options: ClusterOptions, *, timeout_s: float = 300.0) -> None:
    """Deploy (or update) the app declaratively, the way `serve deploy` does: the app is named by
    an import path and its arguments, so a second deploy that changes only `num_replicas` is a
    light update that keeps the running replicas (and their prefix caches) instead of replacing
    every one of them, as a fresh `serve.run` of new Python objects would."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeApplicationSchema, ServeDeploySchema

    app = ServeApplicationSchema(
        name=APP_NAME, import_path=f"{__name__}:app_from_args", route_prefix=None,
        # The count travels only in the deployment override: the args stay the same when it changes.
        args={"options": {k: v for k, v in dataclasses.asdict(options).items() if k != "num_replicas"}},
        deployments=[{"name": "NpcEngineReplica", "num_replicas": options.num_replicas}])
    serve.start(proxy_location="Disabled")
    _get_global_client().deploy_apps(ServeDeploySchema(applications=[app], proxy_location="Disabled"))
    deadline = time.monotonic() + timeout_s
    while True:
        status = serve.status().applications.get(APP_NAME)
        if status is not None and status.status == "RUNNING":
            replicas = status.deployments.get("NpcEngineReplica")
            if replicas is not None and replicas.replica_states.get("RUNNING", 0) == options.num_replicas:
                return
        if status is not None and status.status == "DEPLOY_FAILED":
            raise ClusterError(f"the cluster did not deploy: {status.message}")
        if time.monotonic() > deadline:
            raise ClusterError(f"the cluster was not running after {timeout_s:.0f} s: {status}")
        time.sleep(0.5)


def connect_gateway(bind: str, *, app_name: str = APP_NAME, **server_options: Any) -> Any:
    """A gateway in this process, in front of a running cluster (`npc-engine cluster gateway`):
    the same server as the deployed gateway, for a second entry point or a gateway that a
    game's launcher owns. Returns the started `Server`."""
    from ..server import Server

    replicas = serve.get_deployment_handle("NpcEngineReplica", app_name=app_name)
    state = serve.get_deployment_handle("NpcState", app_name=app_name)
    router = result_of(replicas.routing.remote())
    cluster = ClusterEngine(replicas, state, router=router)
    return Server(cluster, RemoteStore(state), says=cluster, bind=bind, **server_options).start()


def start_cluster(options: ClusterOptions, *, timeout_s: float = 300.0) -> tuple[Any, str]:
    """Deploy (or update) the cluster on the Ray instance this process is connected to; returns
    (the gateway's handle, its ZeroMQ endpoint)."""
    deploy(options, timeout_s=timeout_s)
    handle = serve.get_app_handle(APP_NAME)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return handle, handle.endpoint.remote().result(timeout_s=30)
        except Exception as exc:  # the gateway is still starting (Ray's own types): ask again
            if time.monotonic() > deadline:
                raise ClusterError(f"the gateway did not report its endpoint within {timeout_s:.0f} s: {exc}") from exc
            time.sleep(0.5)
