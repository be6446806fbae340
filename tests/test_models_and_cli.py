"""The tiny model round-trips through from_pretrained; the CLI prints JSON and clean errors."""

from __future__ import annotations

import json

import torch

from npc_engine.cli import main
from npc_engine.models import DiffusionGemmaBackend, TinyModelSpec

from .conftest import SHOPKEEPER_TEMPLATE


def test_tiny_model_loads_like_a_real_checkpoint(backend, tiny_model_dir):
    info = backend.info()
    assert 500_000 < info.num_parameters < 10_000_000
    assert info.canvas_length == TinyModelSpec().canvas_length
    assert info.device == "cpu" and info.dtype == "float32"
    assert backend.model.__class__.__name__ == "DiffusionGemmaForBlockDiffusion"
    assert backend.tokenizer.chat_template
    assert backend.eos_token_ids == [1] and backend.pad_token_id == 0
    reloaded = DiffusionGemmaBackend.from_pretrained(tiny_model_dir, device="cpu")
    for a, b in zip(backend.model.state_dict().values(), reloaded.model.state_dict().values()):
        assert torch.equal(a, b)


def test_cli_fill_prints_json(tiny_model_dir, capsys):
    code = main(["fill", "--model", str(tiny_model_dir), "--template",
                 SHOPKEEPER_TEMPLATE, "--prompt", "Hello!", "--seed", "4"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["template"] == "shopkeeper_reply" and payload["seed"] == 4
    assert set(payload["fields"]) == {"say", "emotion", "action", "trust_delta", "ends_conversation"}


def test_cli_reports_errors_without_traceback(tiny_model_dir, tmp_path, capsys):
    code = main(["fill", "--model", str(tmp_path), "--template",
                 SHOPKEEPER_TEMPLATE, "--prompt", "Hello!"])
    assert code == 2
    assert "no config.json" in capsys.readouterr().err
    code = main(["fill", "--model", str(tiny_model_dir), "--template", str(tmp_path / "x.json"),
                 "--prompt", "Hello!"])
    assert code == 2
    assert "cannot read template file" in capsys.readouterr().err
