"""`npc-engine cluster up` and `npc-engine cluster gateway` (the CLI's argument parsing is in cli.py)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import ray
from ray import serve

from ..errors import BindError, ConfigError
from .app import APP_NAME, ClusterOptions, connect_gateway, start_cluster
from .replica import ReplicaOptions
from .state import IN_MEMORY_WARNING

__all__ = ["gateway", "up"]


def _stop_on_signal() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def up(args: argparse.Namespace) -> int:
    """Start (or update) the cluster and hold it until SIGINT/SIGTERM, then take it down."""
    if args.replicas < 1:
        raise ConfigError(f"--replicas must be >= 1, got {args.replicas}")
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    # One GPU per replica when the cluster has GPUs, the CPU otherwise (the flags override).
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    gpus = args.gpus_per_replica if args.gpus_per_replica is not None else (1.0 if has_gpus else 0.0)
    device = args.device or ("cuda" if gpus > 0 else "cpu")
    replica = ReplicaOptions(model=args.model, backend=args.backend, device=device,
                             frame_budget_ms=args.frame_budget_ms, max_denoising_steps=args.max_steps)
    options = ClusterOptions(num_replicas=args.replicas, bind=args.bind, replica=replica, db_path=args.db,
                             template_dirs=tuple(str(Path(t).resolve()) for t in args.templates),
                             num_cpus_per_replica=args.cpus_per_replica, num_gpus_per_replica=gpus,
                             max_queued_requests=args.max_queued,
                             gateway_options={"is_insecure": args.insecure,
                                              "curve_keys": str(args.curve_keys.resolve()) if args.curve_keys else None})
    stop = _stop_on_signal()
    try:
        handle, endpoint = start_cluster(options)
        router = handle.router.remote().result()
        state_path = serve.get_deployment_handle("NpcState", app_name=APP_NAME).db_path.remote().result()
        print(f"npc-engine serving on {endpoint} (cluster: {args.replicas} replicas, router {router}; "
              f"Ray {ray.__version__}; state: {state_path})", flush=True)
        if state_path == ":memory:":
            print(f"npc-engine: warning: {IN_MEMORY_WARNING}", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        if APP_NAME in serve.status().applications:
            serve.delete(APP_NAME)
        ray.shutdown()
    return 0


def gateway(args: argparse.Namespace) -> int:
    """One more gateway, in this process, for a running cluster; held until SIGINT/SIGTERM."""
    ray.init(address=args.address, log_to_driver=False)
    stop = _stop_on_signal()
    try:
        server = connect_gateway(args.bind, is_insecure=args.insecure, curve_keys=args.curve_keys)
    except BindError as exc:
        print(f"npc-engine: error: {exc}; choose another --bind address or port", file=sys.stderr)
        ray.shutdown()
        return 2
    print(f"npc-engine serving on {server.endpoint} (gateway of the cluster at {args.address}; "
          f"router {server.engine.router})", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        ray.shutdown()
    return 0
