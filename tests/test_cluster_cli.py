"""`npc-engine cluster up` as a user runs it: a local Ray instance, replicas, the gateway; a say
through it; SIGTERM takes it all down and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from npc_engine.characters import Store
from npc_engine.client import Client
from npc_engine.demo.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_cluster_up_serves_the_protocol_and_stops_on_sigterm(tiny_model_dir, tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "npc_engine.cli", "cluster", "up", "--replicas", "2", "--num-cpus", "2",
         "--cpus-per-replica", "0.5", "--model", str(tiny_model_dir), "--templates", str(ROOT / "schemas" / "templates"),
         "--max-steps", "4", "--bind", endpoint],  # no --db: state is durable by default
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", NPC_ENGINE_DATA_DIR=str(tmp_path)))
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True).start()
    try:
        first_line = process.stdout.readline()
        assert f"serving on {endpoint}" in first_line and "router consistent_hash" in first_line, "".join(stderr)[-3000:]
        assert f"state: {tmp_path / 'cluster-state.db'}" in first_line
        with Client(endpoint, timeout_s=120) as client:
            client.upsert_speaker("player", "Aria")
            client.upsert_character({"id": "brom", "name": "Brom", "persona": "A smith."})
            reply = client.say("brom", "player", "Hello?", template="shopkeeper_reply", seed=1)
            assert reply.finish_reason == "complete" and reply.changes
            deadline = time.monotonic() + 30  # replicas report their stats every second once up
            while client.stats().engine["cluster"]["num_replicas"] < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert client.stats().engine["cluster"]["num_replicas"] == 2
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=120)
    assert returncode == 0, "".join(stderr)[-3000:]
    assert "brom" in Store(tmp_path / "cluster-state.db").list_characters()  # on disk, past the cluster's end
