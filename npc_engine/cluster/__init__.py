"""Scale past one machine on Ray Serve (`pip install "npc-voice-engine[cluster]"`).

`npc-engine cluster up --replicas N` starts engine replicas, one state service and a ZeroMQ
gateway that speaks the same protocol as `npc-engine serve`; see docs/deployment.md.
Importing this package imports Ray.
"""

from .app import APP_NAME, ClusterOptions, build_app, connect_gateway, deploy, pick_router, start_cluster
from .replica import ReplicaOptions

__all__ = ["APP_NAME", "ClusterOptions", "ReplicaOptions", "build_app", "connect_gateway", "deploy", "pick_router",
           "start_cluster"]
