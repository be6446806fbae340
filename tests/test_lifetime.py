"""The server's life tied to the game's, with real processes: a parent that dies by SIGKILL takes
its server with it within 2 s and every acknowledged write is kept; EOF on stdin stops it; `--port 0`
and `--status-file` tell a launcher where it listens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from npc_engine import Store
from npc_engine.client import Client
from npc_engine.server.lifetime import is_process_alive

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "schemas" / "templates"


def serve_args(tiny_model_dir, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "npc_engine.cli", "serve", "--model", str(tiny_model_dir), "--db", str(db),
            "--templates", str(TEMPLATES), "--port", "0", "--threads", "1", *extra]


def endpoint_of(first_line: str) -> str:
    assert first_line.startswith("npc-engine serving on "), first_line
    return first_line.split()[3]


def wait_gone(pid: int, within_s: float) -> float:
    started = time.monotonic()
    while is_process_alive(pid):
        if time.monotonic() - started > within_s:
            pytest.fail(f"process {pid} still runs {within_s} s later")
        time.sleep(0.05)
    return time.monotonic() - started


def test_the_server_ends_with_its_parent_and_keeps_what_it_acknowledged(tiny_model_dir, tmp_path):
    db = tmp_path / "npc.db"
    # The parent: starts the server with its own pid, reports the endpoint, then waits to be killed.
    parent_code = textwrap.dedent(f"""
        import os, subprocess, sys, time
        args = {serve_args(tiny_model_dir, db)!r} + ["--parent-pid", str(os.getpid())]
        server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        print(server.pid, server.stdout.readline().strip(), flush=True)
        time.sleep(3600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        server_pid, first_line = parent.stdout.readline().strip().split(" ", 1)
        server_pid = int(server_pid)
        with Client(endpoint_of(first_line), timeout_s=60) as client:
            client.upsert_speaker("player", "Aria")
            client.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith."})
            reply = client.say("brom", "player", "Any work?", template="shopkeeper_reply", seed=1)
        assert reply.fields
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        # The watchdog polls every 0.2 s and a stopped serve skips the interpreter's teardown:
        # measured 0.05 s on a quiet machine, so the 2 s of the launcher contract has room.
        took_s = wait_gone(server_pid, within_s=2.0)
    finally:
        if parent.poll() is None:
            parent.kill()
    print(f"server gone {took_s:.2f} s after its parent was killed")
    with Store(db) as store:  # acknowledged before the parent died: all there
        brom = store.get_character("brom")
        assert [t.speaker_id for t in brom.recent_turns] == ["player", "brom"]
        assert store.list_speakers()[0].name == "Aria"


def test_stdin_eof_stops_the_server_and_the_status_file_names_its_endpoint(tiny_model_dir, tmp_path):
    status_file = tmp_path / "run" / "npc-engine.json"
    server = subprocess.Popen(serve_args(tiny_model_dir, tmp_path / "npc.db", "--exit-on-stdin-eof",
                                         "--status-file", str(status_file)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        endpoint = endpoint_of(server.stdout.readline())
        assert not endpoint.endswith(":0") and endpoint.startswith("tcp://127.0.0.1:")  # a real port was picked
        status = json.loads(status_file.read_text())
        assert status["endpoint"] == endpoint and status["pid"] == server.pid
        with Client(endpoint, timeout_s=30) as client:
            assert client.ping().server_time_ms > 0
        server.stdin.close()  # what the OS does when the launcher dies
        assert server.wait(10) == 0, server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
    assert not status_file.exists()


@pytest.mark.parametrize("flags, message", [
    (["--bind", "tcp://127.0.0.1:6001"], "give --bind or --port, not both"),
    (["--port", "70000"], "--port must be"),
    (["--parent-pid", "0"], "--parent-pid must be"),
])
def test_bad_lifetime_flags_are_clear_errors(tiny_model_dir, tmp_path, flags, message):
    args = serve_args(tiny_model_dir, tmp_path / "npc.db")
    if "--port" in flags:
        args = args[:-4] + args[-2:]  # drop the default --port 0
    done = subprocess.run(args + flags, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_is_process_alive_sees_a_live_and_a_dead_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert is_process_alive(child.pid) and is_process_alive(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert not is_process_alive(child.pid)
