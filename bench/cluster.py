"""Says per second and latency: `npc-engine serve` vs the Ray Serve cluster's gateway, 1 and 2 replicas.

The same load for each: K concurrent clients (AsyncClient), each its own character, saying
N lines in turn (tiny random model with its own step cap, CPU). `serve` runs in a subprocess; the
cluster runs on a local Ray instance (`ray.init(num_cpus=2)`), its gateway in a Serve replica;
one replica reserves both CPUs, two replicas one each (Ray sets an actor's torch threads to the
CPUs it reserves, so each setup computes on the same two cores).

    python bench/cluster.py [--clients 8] [--says 6] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TEMPLATE, hardware, write_json  # noqa: E402

import torch  # noqa: E402

from npc_engine.client import AsyncClient  # noqa: E402
from npc_engine.demo import ServerProcess  # noqa: E402
from npc_engine.models import build_tiny_model  # noqa: E402

async def _load(endpoint: str, num_clients: int, num_says: int) -> dict[str, float]:
    latencies: list[float] = []

    async def one_client(index: int) -> None:
        async with AsyncClient(endpoint, timeout_s=300) as client:
            await client.upsert_speaker("player", "Aria")
            await client.upsert_character({"id": f"c{index}", "name": f"C{index}", "persona": "A smith."})
            await client.say(f"c{index}", "player", "warm up", template="shopkeeper_reply")
            for turn in range(num_says):
                started = time.perf_counter()
                reply = await client.say(f"c{index}", "player", f"line {turn}", template="shopkeeper_reply")
                if reply.finish_reason != "complete":
                    raise RuntimeError(f"a say ended {reply.finish_reason}")
                latencies.append((time.perf_counter() - started) * 1000.0)

    started = time.perf_counter()
    await asyncio.gather(*(one_client(i) for i in range(num_clients)))
    wall_s = time.perf_counter() - started
    latencies.sort()
    return {"says_per_s": round(len(latencies) / wall_s, 2), "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--says", type=int, default=6)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="npc-bench-cluster-"))
    model = build_tiny_model(scratch / "tiny")
    templates = str(Path(TEMPLATE).parent)
    rows = []
    serve_args = ["--max-outstanding", "256"]
    with ServerProcess(model=model, db=scratch / "serve.db", templates=[templates], extra_args=serve_args) as server:
        rows.append({"setup": "npc-engine serve", **asyncio.run(_load(server.endpoint, args.clients, args.says))})

    import ray
    from ray import serve

    from npc_engine.cluster import APP_NAME, ClusterOptions, ReplicaOptions, start_cluster

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    options = ClusterOptions(num_replicas=1, bind="tcp://127.0.0.1:0", db_path=str(scratch / "cluster.db"),
                             replica=ReplicaOptions(model=str(model)), template_dirs=(templates,))
    # Ray gives an actor as many torch threads as CPUs it reserves: two replicas get one each.
    # Each setup is a fresh deploy (a rolling update would need both setups' CPUs at once).
    for num_replicas in (1, 2):
        _, endpoint = start_cluster(dataclasses.replace(options, num_replicas=num_replicas,
                                                        num_cpus_per_replica=2.0 / num_replicas))
        rows.append({"setup": f"cluster, {num_replicas} replica{'s' * (num_replicas > 1)}",
                     **asyncio.run(_load(endpoint, args.clients, args.says))})
        serve.delete(APP_NAME)
    serve.shutdown()
    ray.shutdown()

    base = rows[0]["says_per_s"]
    cpu = hardware(torch.device("cpu"))
    print(f"says through the gateway vs serve; tiny model; {args.clients} clients x {args.says} says; CPU: {cpu}; "
          f"Ray {ray.__version__}")
    print(f"{'setup':<22} | {'says/s':>7} | {'p50 ms':>8} | {'p99 ms':>8} | {'vs serve':>8}")
    for row in rows:
        print(f"{row['setup']:<22} | {row['says_per_s']:>7.2f} | {row['p50_ms']:>8.1f} | {row['p99_ms']:>8.1f} | "
              f"{row['says_per_s'] / base:>7.2f}x")
    write_json("cluster", {"hardware": cpu, "clients": args.clients, "says_per_client": args.says,
                           "ray": ray.__version__, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
