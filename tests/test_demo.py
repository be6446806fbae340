"""`npc-engine demo` as a user runs it (a real server subprocess, the shipped model), and the
pygame prototype headless under SDL's dummy video driver against a live server."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from npc_engine.demo import ServerProcess
from npc_engine.demo.tavern import clean_input
from npc_engine.training.line_pattern import world_line_pattern

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "demos" / "terminal" / "tavern_script.txt"


def _demo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npc_engine.cli", "demo", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_demo_plays_its_script_and_exits_zero():
    completed = _demo("--script", str(SCRIPT), "--seed", "1")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "model with 2,117,984 parameters" in out          # the shipped model, through the server
    assert 'Brom: "' in out and 'Mira: "' in out and "emotion:" in out
    assert "drafts," in out                                  # streamed over the protocol
    assert "Saved the Crooked Flagon to slot 'evening'" in out
    assert "There is no save slot 'no_such_slot'. Slots: evening." in out  # and it kept going
    assert "Loaded slot 'evening'" in out
    # Walking in, Brom greets the player (a game event), before the player says anything.
    greeting = out.index("[A traveller walks into the Crooked Flagon and comes to you.]")
    assert greeting < out.index("> Good evening!") and out.index('Brom: "', greeting) < out.index("> Good evening!")
    # /wait: the player stays silent and Mira and Brom exchange lines.
    exchange = out[out.index("> /wait"):out.index("> /talk mira")]
    assert "[The traveller stays silent; Mira turns to Brom.]" in exchange
    assert exchange.count('Mira: "') == 2 and exchange.count('Brom: "') == 1, exchange
    # Mira's state holds the exchange from her own view and what was just said to her.
    memory = out[out.index("> /memory"):out.index("> /who")]
    assert "Mira remembers 6 recent lines" in memory and "  Brom: " in memory and "  you: What grows" in memory
    assert "mood:" in out                                    # a state change was shown
    # The default template is the authored one: every line is one of the corpus's own, with the
    # names of whoever is there (the player is "Traveller"; in /wait they address each other).
    line_pattern = world_line_pattern(placeholders=("player", "name"))
    names = "(Brom|Mira|Tomas)"
    regex = re.compile(line_pattern.replace("{player}", f"(Traveller|{names[1:-1]})").replace("{name}", names))
    lines = re.findall(r'^(?:Brom|Mira|Tomas): "(.*)"$', out, flags=re.M)
    assert len(lines) >= 6 and [line for line in lines if not regex.fullmatch(line)] == [], lines


def test_the_shipped_authored_template_is_the_corpus_grammar():
    sys.path.insert(0, str(ROOT / "tools"))
    from write_authored_template import TARGETS, authored_template

    expected = authored_template()
    for target in TARGETS:
        assert json.loads(target.read_text()) == expected, f"{target}: run tools/write_authored_template.py"


def test_demo_reports_a_taken_port_a_missing_model_and_a_missing_script(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        completed = _demo("--script", str(SCRIPT), "--port", str(port))
    assert completed.returncode == 1 and f"port {port} is already taken" in completed.stderr
    completed = _demo("--model", str(tmp_path / "nothing"))
    assert completed.returncode == 2 and "no model at" in completed.stderr
    completed = _demo("--script", str(tmp_path / "missing.txt"))
    assert completed.returncode == 2 and "cannot read the script" in completed.stderr


def test_input_loses_control_characters():
    assert clean_input("\x1b[31mhello\x07 there\x00\n") == "[31mhello there"
    assert clean_input("  \t ") == ""


def test_pygame_prototype_frame_loop_never_waits_on_the_engine(tiny_model_dir, tmp_path):
    pytest.importorskip("pygame")
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ["SDL_AUDIODRIVER"] = "dummy"
    sys.path.insert(0, str(ROOT / "demos" / "python_prototype"))
    try:
        import main as prototype
    finally:
        sys.path.pop(0)
    screenshot, frame_log = tmp_path / "prototype.png", tmp_path / "frames.csv"
    # Slowed (one denoising step per 50 ms frame) so every reply spans many game frames.
    with ServerProcess(model=tiny_model_dir, db=tmp_path / "state.db", templates=[ROOT / "schemas" / "templates"],
                       extra_args=["--frame-budget-ms", "1", "--target-fps", "20"]) as server:
        summary = prototype.run(server.endpoint, script=["Any work?", "What grows by the mill?"],
                                max_frames=20_000, screenshot=screenshot, frame_log=frame_log, fps=120)
    assert summary["lines"]["brom"] and summary["lines"]["mira"], summary
    rows = list(csv.DictReader(frame_log.open()))
    assert len(rows) == summary["num_frames"]
    # The loop kept drawing while replies were generated: many frames had a say in flight, and
    # the bubble showed drafts (grey text) before the final line.
    assert summary["num_frames_in_flight"] >= 10, summary
    assert summary["num_drafts_shown"] >= 2, summary
    bubbles = [row["bubble"] for row in rows if row["in_flight"] != "0"]
    assert len(set(bubbles)) >= 2, "the bubble changed while the engine worked"
    import pygame

    image = pygame.image.load(str(screenshot))
    assert image.get_size() == (prototype.WIDTH, prototype.HEIGHT)
    frame_ms = sorted(float(row["frame_ms"]) for row in rows)
    print(f"pygame prototype: {len(rows)} frames, frame time p50 {frame_ms[len(frame_ms) // 2]:.2f} ms, "
          f"max {frame_ms[-1]:.2f} ms; time in the bridge per frame max {summary['max_bridge_ms']:.2f} ms")
