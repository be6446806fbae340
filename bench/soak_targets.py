"""What the soak runs against and kills: `npc-engine serve` in a subprocess (SIGKILL, then the
same command again on the same port and database), or a local Ray Serve cluster (a replica is
killed; Serve starts a new one)."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from npc_engine.characters import Store
from npc_engine.demo.server_process import ServerProcess, ServerStartError, free_port

__all__ = ["ClusterTarget", "ServeTarget"]

TEMPLATES = Path(__file__).resolve().parent.parent / "schemas" / "templates"


def integrity_check(db: Path) -> str:
    """SQLite's own check of the state file ("ok" when healthy)."""
    with Store(db) as store:
        return store.integrity_check()


class ServeTarget:
    def __init__(self, folder: Path, *, model: str | None = None) -> None:
        self.db = folder / "state.db"
        self.model = model
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.server: ServerProcess | None = None
        self.num_kills = 0

    def start(self) -> None:
        for _ in range(50):  # the killed server's port is free again within moments
            try:
                self.server = ServerProcess(port=self.port, model=self.model, db=self.db, templates=[TEMPLATES]).start()
                return
            except ServerStartError as exc:
                if "already taken" not in str(exc):
                    raise
                time.sleep(0.2)
        raise ServerStartError(f"port {self.port} stayed taken after the kill")

    def kill_and_restart(self) -> str:
        """SIGKILL (no shutdown path runs), check the file, start again; returns integrity_check's answer."""
        process = self.server.process
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        self.num_kills += 1
        result = self.integrity_check()
        self.start()
        return result

    def integrity_check(self) -> str:
        return integrity_check(self.db)

    def memory_bytes(self) -> int:
        """The server process's resident memory."""
        try:
            for line in Path(f"/proc/{self.server.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (OSError, AttributeError):
            pass
        return 0

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class ClusterTarget:
    """Two replicas (half a CPU each) on a local Ray instance; the state service's file in `folder`."""

    def __init__(self, folder: Path, *, model: str | None = None) -> None:
        self.db = folder / "cluster-state.db"
        self.model = model
        self.endpoint = ""
        self.num_kills = 0
        self.rng = random.Random(1)

    def start(self) -> None:
        import ray

        from npc_engine.cluster import ClusterOptions, ReplicaOptions, start_cluster

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        options = ClusterOptions(num_replicas=2, bind=f"tcp://127.0.0.1:{free_port()}", db_path=str(self.db),
                                 template_dirs=(str(TEMPLATES),), replica=ReplicaOptions(model=self.model),
                                 num_cpus_per_replica=0.5)
        _, self.endpoint = start_cluster(options)

    def kill_and_restart(self) -> str:
        """Kill one replica at random (Serve replaces it; its says in flight are retried by the gateway)."""
        import ray

        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "NpcEngineReplica" in a["name"]]
        if names:
            ray.kill(ray.get_actor(self.rng.choice(sorted(names)), namespace="serve"), no_restart=True)
            self.num_kills += 1
        return self.integrity_check()

    def integrity_check(self) -> str:
        return integrity_check(self.db)

    def memory_bytes(self) -> int:
        return 0  # several processes: not measured

    def stop(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()
