"""World files (training/world.py): the tavern's file reproduces the generator that was Python
constants, draw for draw; every world is validated with errors that name the file, the JSON path
and the reason."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from npc_engine.training.world import DataError, TAVERN_PATH, load_world, tavern_world

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def test_the_tavern_world_reproduces_the_generator_draw_for_draw():
    """Digests recorded (tools/record_tavern_draws.py) from the generator before its corpus moved
    into npc_engine/worlds/tavern.json: every split and the stream, three configs."""
    from record_tavern_draws import draws

    recorded = json.loads((ROOT / "tests" / "data" / "tavern_draws.json").read_text())
    assert draws() == recorded


def test_the_tavern_trains_the_shipped_template():
    shipped = json.loads((ROOT / "schemas" / "templates" / "shopkeeper_reply.json").read_text())
    assert tavern_world().template.model_dump(mode="json", exclude_none=True) == \
        load_world(TAVERN_PATH).template.model_validate(shipped).model_dump(mode="json", exclude_none=True)


def test_the_schema_file_is_the_code_s():
    from npc_engine.training.world import world_schema

    assert (ROOT / "schemas" / "world.json").read_text() == world_schema()


EXAMPLE = ROOT / "demos" / "worlds" / "example.json"


def _broken(tmp_path, change) -> Path:
    world = json.loads(EXAMPLE.read_text())
    change(world)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(world))
    return path


@pytest.mark.parametrize("change, where, why", [
    (lambda w: w.update(weather="fog"), "weather", "Extra inputs are not permitted"),
    (lambda w: w["intents"]["greet"]["lines"].append('He said "hi".'), "intents.greet.lines",
     "quote, backslash or control character"),
    (lambda w: w["intents"]["buy"]["lines"].append("Take {gold}."), "intents.buy.lines", "unknown filler {gold}"),
    (lambda w: w["intents"]["buy"]["lines"].append("Take it }."), "intents.buy.lines", "stray brace"),
    (lambda w: w["intents"]["greet"].update(lines=[]), "intents.greet.lines", "at least 1 item"),
    (lambda w: w["intents"]["insult"].update(emotions={"*": "furious"}), "(the file)|insult.emotions",
     "unknown mood 'furious'"),
    (lambda w: w["intents"]["greet"]["phrasings"].append("[Hi|Hello"), "intents.greet.phrasings",
     "unbalanced"),
    (lambda w: w["mood_openers"].pop("angry"), "", "mood_openers must have exactly the moods"),
    (lambda w: w["template"]["slots"][2]["options"].remove("point_to_sea"), "", "the action slot lacks 'point_to_sea'"),
])
def test_a_broken_world_is_refused_naming_the_file_path_and_reason(tmp_path, change, where, why):
    path = _broken(tmp_path, change)
    with pytest.raises(DataError) as refused:
        load_world(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and why in message, message
    assert any(part in message for part in where.split("|")), message


def test_unreadable_and_malformed_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="cannot read the world file"):
        load_world(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad.json: not JSON"):
        load_world(tmp_path / "bad.json")


def test_a_world_trains_with_one_command_and_its_folder_round_trips(tmp_path, capsys):
    """`npc-engine train --world FILE`: a few steps on the example world; the loss falls, the
    folder serves the world's own template, and eval scores it from the same world."""
    from npc_engine import Engine
    from npc_engine.cli import main
    from npc_engine.training.data import DataConfig, generate

    out = tmp_path / "keeper"
    assert main(["train", "--world", str(EXAMPLE), "--out", str(out), "--steps", "12", "--batch-size", "8",
                 "--eval-every", "4", "--num-train", "120", "--num-validation", "16", "--learning-rate", "3e-3",
                 "--event-fraction", "0.2"]) == 0
    report = json.loads((out / "training.json").read_text())
    losses = [entry["validation_loss"] for entry in report["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert report["data"]["generator"]["world"] == str(EXAMPLE)
    engine = Engine.from_pretrained(out, device="cpu", max_denoising_steps=4)
    sample = generate(DataConfig(num_heldout=2, world=str(EXAMPLE)), split="heldout")[0]
    result = engine.fill("keeper_reply", sample.prompt, prefix=sample.prefix, seed=1)
    assert result.finish_reason == "complete" and result.fields["emotion"] in ("happy", "angry", "neutral")
    assert "shopkeeper_reply" not in engine.templates
    authored = engine.resolve_template(out / "templates" / "keeper_authored.json")  # written beside keeper_reply
    engine.register_template(authored)
    line = engine.fill("keeper_authored", sample.prompt, prefix=sample.prefix, seed=2,
                       values={"player": "Aria", "name": "Ewan"}).fields["say"]
    assert line.split()[0] in ("Ha!", "Oh,", "Hmph.", "Enough.", "Aye.", "Well,"), line
    assert main(["eval", "--model", str(out), "--num-samples", "4", "--no-floor", "--slices", "heldout,events"]) == 0
    assert "game events" in capsys.readouterr().out
    script = tmp_path / "visit.txt"
    script.write_text("Good day.\n/wait\n/quit\n")
    assert main(["demo", "--world", str(EXAMPLE), "--model", str(out), "--script", str(script)]) == 0
    shown = capsys.readouterr().out
    assert "You step into Skerry Point. Ewan (ewan), Finlay (finlay) are here." in shown and "Ewan: " in shown
    assert main(["train", "--world", str(_broken(tmp_path, lambda w: w.pop("moods"))), "--out",
                 str(tmp_path / "never"), "--steps", "1"]) == 2
    assert not (tmp_path / "never").exists()  # refused before any work


def test_the_guide_shows_the_example_file_as_it_is():
    assert EXAMPLE.read_text() in (ROOT / "docs" / "worlds.md").read_text()


def test_a_world_scene_takes_its_characters_and_arrival_from_the_world():
    from npc_engine.demo import world_scene

    scene = world_scene(load_world(ROOT / "demos" / "worlds" / "outpost.json"))
    assert scene.place == "Kestrel Deep" and list(scene.characters) == ["hollis", "dr_amara", "cade"]
    assert scene.arrival == "Traveller steps out of the docking ring."
    assert (scene.template, scene.free_text_template) == ("crew_authored", "crew_reply")
    script = (ROOT / "demos" / "terminal" / "outpost_script.txt").read_text()
    talked_to = [line.split()[1] for line in script.splitlines() if line.startswith("/talk ")]
    assert talked_to and set(talked_to) <= set(scene.characters)  # the script names the scene's own
