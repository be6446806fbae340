"""`npc-engine serve`, `schemas` and `curve-keys` as a user runs them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from npc_engine.cli import main
from npc_engine.client import Client
from npc_engine.demo.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_serve_runs_until_sigterm(tiny_model_dir, tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "npc_engine.cli", "serve", "--bind", endpoint, "--model", str(tiny_model_dir),
         "--db", str(tmp_path / "state.db"), "--templates", str(ROOT / "schemas" / "templates")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "serving on" in line and "shopkeeper_reply" in line, (line, process.stderr.read())
        with Client(endpoint, timeout_s=60) as client:
            assert client.hello().model.num_parameters > 0
            client.upsert_speaker("player", "Aria")
            client.upsert_character({"id": "brom", "name": "Brom", "persona": "A smith."})
            reply = client.say("brom", "player", "Hello!", template="shopkeeper_reply", seed=1)
            assert reply.finish_reason == "complete"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    from npc_engine import Store
    assert len(Store(tmp_path / "state.db").get_character("brom").recent_turns) == 2  # it persisted


def test_serve_refuses_an_open_bind_without_curve(tiny_model_dir, capsys):
    code = main(["serve", "--bind", "tcp://0.0.0.0:5999", "--model", str(tiny_model_dir)])
    assert code == 2 and "--curve-keys" in capsys.readouterr().err


def test_serve_says_when_its_port_is_taken(tiny_model_dir, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        code = main(["serve", "--bind", endpoint, "--model", str(tiny_model_dir), "--db", str(tmp_path / "s.db")])
    assert code == 2 and "Address already in use" in capsys.readouterr().err


def test_schemas_command_checks_and_writes(tmp_path, capsys):
    assert main(["schemas", "--dir", str(ROOT / "schemas")]) == 0
    assert main(["schemas", "--dir", str(tmp_path)]) == 1
    assert "npc-engine schemas --write" in capsys.readouterr().err
    assert main(["schemas", "--write", "--dir", str(tmp_path)]) == 0
    assert main(["schemas", "--dir", str(tmp_path)]) == 0


def test_curve_keys_command(tmp_path):
    assert main(["curve-keys", str(tmp_path / "keys")]) == 0
    for name in ("server.key", "server.key_secret", "client.key", "client.key_secret", "clients/client.key"):
        assert (tmp_path / "keys" / name).is_file()
