"""How long the bridges' walkthrough steps take on this machine (the READMEs quote it).

    python tools/time_walkthrough.py [--clone DIR]

With `--clone`, first times `./npc --help` in a fresh clone of this repository (the first run
creates the virtualenv and installs everything; pip's cache on the machine makes it faster than a
player's first time). Then, from this checkout: `./npc serve --templates schemas/templates` until
it listens (the built-in model), the first line of a new character (`say`, shopkeeper_authored),
a second line, and Godot's first import of bridges/godot in a fresh editor profile (the step
before pressing Play). Prints a Markdown table."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _server_rows(scratch: Path) -> list[tuple[str, float]]:
    from npc_engine.client import Client

    status = scratch / "status.json"
    started = time.perf_counter()
    server = subprocess.Popen([str(ROOT / "npc"), "serve", "--templates", "schemas/templates", "--port", "0",
                               "--db", str(scratch / "state.db"), "--status-file", str(status)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not status.is_file():
            if server.poll() is not None or time.perf_counter() - started > 300:
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        listening_s = time.perf_counter() - started
        endpoint = json.loads(status.read_text())["endpoint"]
        with Client(endpoint) as npc:
            npc.hello()
            npc.upsert_speaker("player", "Aria")
            npc.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith in Thornvale."})
            said = time.perf_counter()
            npc.say("brom", "player", "Any work for me?", template="shopkeeper_authored")
            first_s = time.perf_counter() - said
            said = time.perf_counter()
            npc.say("brom", "player", "How much is the hammer?", template="shopkeeper_authored")
            second_s = time.perf_counter() - said
    finally:
        server.terminate()
        server.wait(30)
    return [("`./npc serve --templates schemas/templates` until it listens (built-in model)", listening_s),
            ("first line of a new character (`say`, connected)", first_s),
            ("a later line", second_s)]


def _godot_row(scratch: Path) -> tuple[str, float] | None:
    fetch = ROOT / "bridges" / "godot" / "tools" / "fetch-godot.sh"
    godot = subprocess.run([str(fetch)], capture_output=True, text=True)
    if godot.returncode != 0:
        return None
    project = scratch / "godot-project"
    shutil.copytree(ROOT / "bridges" / "godot", project, ignore=shutil.ignore_patterns(".godot"))
    env = dict(os.environ, XDG_DATA_HOME=str(scratch / "xdg" / "data"), XDG_CONFIG_HOME=str(scratch / "xdg" / "config"),
               XDG_CACHE_HOME=str(scratch / "xdg" / "cache"))
    seconds = _timed([godot.stdout.strip().splitlines()[-1], "--headless", "--path", str(project), "--import"],
                     project, env)
    return ("Godot 4.6: first import of the project with the addon (fresh editor profile)", seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", type=Path, default=None, help="time the first `./npc` run in a fresh clone here")
    args = parser.parse_args()
    rows: list[tuple[str, float]] = []
    if args.clone is not None:
        if args.clone.exists():
            raise SystemExit(f"{args.clone} exists; give a new folder")
        subprocess.run(["git", "clone", "-q", str(ROOT), str(args.clone)], check=True)
        rows.append(("first `./npc` in a fresh clone: virtualenv and install (pip cache warm)",
                     _timed([str(args.clone / "npc"), "--help"], args.clone)))
    with tempfile.TemporaryDirectory(prefix="npc-walkthrough-") as scratch:
        rows += _server_rows(Path(scratch))
        godot = _godot_row(Path(scratch))
        if godot is not None:
            rows.append(godot)
    print("| step | seconds |\n|---|---:|")
    for step, seconds in rows:
        print(f"| {step} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
