"""The Godot addon (bridges/godot): `gdlint` and `gdformat --check` clean, and its headless test
suite run under a real Godot 4 against a live `npc-engine serve` with the tiny model, which the
GDScript tests start, kill and restart themselves. Godot comes from Debian testing, unpacked
privately by bridges/godot/tools/fetch-godot.sh (cached under /tmp); NPC_SKIP_BRIDGES=1 skips
the suite on a machine that cannot fetch it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "bridges" / "godot"
SOURCES = ["addons", "tests", "demo"]


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_gdscript_is_lint_clean_and_formatted():
    lint = subprocess.run([_tool("gdlint"), *SOURCES], cwd=PROJECT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatted = subprocess.run([_tool("gdformat"), "--check", *SOURCES], cwd=PROJECT, capture_output=True, text=True)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_godot_addon_suite_against_a_live_server(tiny_model_dir, tmp_path):
    serve_args = ["-m", "npc_engine.cli", "serve", "--model", str(tiny_model_dir), "--db", str(tmp_path / "state.db"),
                  "--templates", str(ROOT / "schemas" / "templates"),
                  # Slowed on purpose (about one denoising step per 50 ms frame): a cancel sent
                  # right after its say arrives first, and drafts are visible between frames.
                  "--frame-budget-ms", "1", "--target-fps", "20"]
    run_godot_suite(serve_args)


def run_godot_suite(serve_args: list[str]) -> None:
    """The GDScript suite with its live tests against servers it starts as `python SERVE_ARGS --bind ...`."""
    if os.environ.get("NPC_SKIP_BRIDGES") == "1":
        pytest.skip("NPC_SKIP_BRIDGES=1")
    env = dict(os.environ, NPC_ENGINE_PYTHON=sys.executable, NPC_ENGINE_SERVE_ARGS_JSON=json.dumps(serve_args),
               NPC_ENGINE_SCHEMAS=str(ROOT / "schemas"))
    completed = subprocess.run([str(PROJECT / "tools" / "run-tests.sh")], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=1200)
    output = completed.stdout + completed.stderr
    print(output)
    summary = re.search(r"(\d+) passed, (\d+) failed", output)
    assert summary, output[-4000:]
    num_passed, num_failed = map(int, summary.groups())
    assert completed.returncode == 0 and num_failed == 0, output[-6000:]
    assert num_passed >= 20


def test_addon_versions_follow_the_protocol():
    connection = (PROJECT / "addons" / "npc_engine" / "npc_connection.gd").read_text()
    index = json.loads((ROOT / "schemas" / "protocol" / "index.json").read_text())
    assert f'const PROTOCOL_VERSION := "{index["protocol_version"]}"' in connection
    plugin = (PROJECT / "addons" / "npc_engine" / "plugin.cfg").read_text()
    version = re.search(r'^version="([^"]+)"', plugin, re.M).group(1)
    assert f'const VERSION := "{version}"' in connection
