"""Bad input raises a documented error whose message names what is wrong and the sizes."""

from __future__ import annotations

import json

import pytest

from npc_engine.bounds import MAX_TEMPLATE_BLOCKS
from npc_engine.errors import ModelLoadError, PromptError, TemplateError, TemplateTooLargeError
from npc_engine.models import DiffusionGemmaBackend
from npc_engine.templates import load_template


def slot_template(*slots):
    return {"name": "greet", "slots": list(slots)}


def test_unknown_slot_kind():
    with pytest.raises(TemplateError) as info:
        load_template(slot_template({"name": "mood", "kind": "colour"}))
    assert "'colour'" in str(info.value) and "slot 'mood'" in str(info.value)
    assert info.value.template == "greet" and info.value.slot == "mood"


def test_empty_choice_list():
    with pytest.raises(TemplateError) as info:
        load_template(slot_template({"name": "emotion", "kind": "choice", "options": []}))
    assert "slot 'emotion'" in str(info.value) and "options" in str(info.value)


def test_min_greater_than_max():
    with pytest.raises(TemplateError) as info:
        load_template(slot_template({"name": "trust", "kind": "integer", "min": 5, "max": -5}))
    assert "slot 'trust'" in str(info.value) and "min (5) > max (-5)" in str(info.value)


def test_integer_range_too_wide():
    with pytest.raises(TemplateError, match="at most 10001"):
        load_template(slot_template({"name": "gold", "kind": "integer", "min": 0, "max": 10**6}))


@pytest.mark.parametrize("bad, fragment", [
    ({"name": "greet", "slots": []}, "slots"),
    (slot_template({"name": "a", "kind": "boolean"}, {"name": "a", "kind": "boolean"}), "duplicate slot names"),
    (slot_template({"name": "say", "kind": "text", "max_tokens": 0}), "max_tokens"),
    (slot_template({"name": "say", "kind": "text", "max_tokens": 4, "min_tokens": 9}), "min_tokens (9) > max_tokens (4)"),
    (slot_template({"name": "x", "kind": "choice", "options": ["a", "a"]}), "duplicate options"),
    (slot_template({"name": "x", "kind": "choice", "options": ["  "]}), "non-empty"),
    (slot_template({"name": "bad name!", "kind": "boolean"}), "name"),
])
def test_other_invalid_templates(bad, fragment):
    with pytest.raises(TemplateError, match=None) as info:
        load_template(bad)
    assert fragment in str(info.value)


def test_template_file_errors(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(TemplateError, match="not valid JSON"):
        load_template(broken)
    with pytest.raises(TemplateError, match="cannot read template file"):
        load_template(tmp_path / "missing.json")
    listing = tmp_path / "list.json"
    listing.write_text("[]", encoding="utf-8")
    with pytest.raises(TemplateError, match="must be a JSON object"):
        load_template(listing)


def test_template_too_large_names_sizes(engine):
    """Over MAX_TEMPLATE_BLOCKS canvases: refused at registration, naming template, size and limit."""
    length = engine.backend.canvas_length
    template = load_template(slot_template(
        {"name": "say", "kind": "text", "max_tokens": 2 * length},
        {"name": "more", "kind": "text", "max_tokens": 2 * length},
    ))
    with pytest.raises(TemplateTooLargeError) as info:
        engine.register_template(template)
    error = info.value
    assert error.canvas_length == length and error.max_blocks == MAX_TEMPLATE_BLOCKS
    assert error.num_required_tokens > MAX_TEMPLATE_BLOCKS * length
    assert "'greet'" in str(error) and f"say={2 * length}" in str(error)
    assert f"{MAX_TEMPLATE_BLOCKS} canvases of {length}" in str(error) and str(error.num_required_tokens) in str(error)
    assert "greet" not in engine.templates
    # Two canvases are not too large: the same slots at half the size lay out over consecutive blocks.
    plan = engine.compiler.compile(load_template(slot_template({"name": "say", "kind": "text", "max_tokens": length})))
    assert plan.num_blocks == 2 and plan.clamp_ids.shape == (2 * length,)


@pytest.mark.parametrize("slot", [
    {"name": "line", "kind": "text", "max_tokens": 1000, "pattern": "[a-z ]+"},  # a pattern slot
    {"name": "pick", "kind": "choice", "options": ["word " * 150, "other"]},      # one long option
])
def test_a_slot_that_cannot_be_split_over_canvases_is_refused(engine, slot):
    with pytest.raises(TemplateTooLargeError) as info:
        engine.register_template(slot_template({"name": "say", "kind": "text", "max_tokens": 8}, slot))
    message = str(info.value)
    assert "'greet'" in message and f"slot {slot['name']!r}" in message and "cannot be split" in message
    assert str(engine.backend.canvas_length) in message


def test_model_dir_errors(tmp_path, tiny_model_dir):
    with pytest.raises(ModelLoadError, match="does not exist"):
        DiffusionGemmaBackend.from_pretrained(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelLoadError, match="not a directory"):
        DiffusionGemmaBackend.from_pretrained(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        DiffusionGemmaBackend.from_pretrained(empty)
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelLoadError) as info:
        DiffusionGemmaBackend.from_pretrained(other)
    assert "'gpt2'" in str(info.value) and "diffusion_gemma" in str(info.value)
    assert info.value.path == str(other)
    garbled = tmp_path / "garbled"
    garbled.mkdir()
    (garbled / "config.json").write_text("{oops")
    with pytest.raises(ModelLoadError, match="cannot read"):
        DiffusionGemmaBackend.from_pretrained(garbled)
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="no weight files"):
        DiffusionGemmaBackend.from_pretrained(no_weights)


def test_prompt_errors(engine):
    with pytest.raises(PromptError, match="must be a string"):
        engine.encode_prompt(42)  # type: ignore[arg-type]
    with pytest.raises(PromptError) as info:
        engine.encode_prompt("word " * 5000)
    assert "tokens" in str(info.value) and "4096" in str(info.value)
