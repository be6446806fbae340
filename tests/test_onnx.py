"""The ONNX Runtime backend: export, parity with PyTorch, running with no torch, bad folders."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from npc_engine import Engine, ExportError, ModelLoadError
from npc_engine.client import Client
from npc_engine.demo import ServerProcess
from npc_engine.models import Backend
from npc_engine.diffusion import RequestNoise
from npc_engine.engine.request import Request, RequestStatus
from npc_engine.export import export_onnx
from npc_engine.export.check import relative_difference
from npc_engine.export.onnx import weights_sha256
from npc_engine.models import DiffusionGemmaBackend, build_tiny_model, default_model_dir, default_onnx_dir
from npc_engine.models.onnx_backend import OnnxBackend

from .conftest import SHOPKEEPER_TEMPLATE, sharpen

# The stated tolerance: ONNX Runtime's float32 logits against PyTorch's, as max |difference| over
# max(1, max |PyTorch logit|) (a sharper model has larger logits and larger rounding).
LOGIT_TOLERANCE = 1e-3
PERSONA = "You are Brom, a gruff smith of Thornvale."
PROMPTS = ["Any rumours?", "How much for the old sword on the wall?", "Hello."]


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    report = export_onnx(tiny_model_dir, folder)
    return folder, report


@pytest.fixture(scope="module")
def sharp_pair(tmp_path_factory):
    """A checkpoint whose logits are peaky (steps accept and stop early), and its export."""
    root = tmp_path_factory.mktemp("sharp")
    backend = sharpen(DiffusionGemmaBackend.from_pretrained(build_tiny_model(root / "raw"), device="cpu"), 40.0)
    backend.model.save_pretrained(root / "checkpoint")
    backend.tokenizer.save_pretrained(root / "checkpoint")
    export_onnx(root / "checkpoint", root / "onnx")
    return root / "checkpoint", root / "onnx"


def test_export_writes_a_checked_folder(exported):
    folder, report = exported
    assert sorted(p.name for p in folder.iterdir()) == ["decoder_step.onnx", "encoder.onnx", "manifest.json",
                                                         "tokenizer.json"]
    assert report.max_logit_diff <= LOGIT_TOLERANCE and report.max_encoder_diff <= LOGIT_TOLERANCE
    assert report.num_tokens_checked > 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["shapes"]["batch"] == "dynamic" and manifest["shapes"]["cache_length"] == "dynamic"
    assert manifest["shapes"]["canvas"].startswith(f"fixed at {manifest['model']['canvas_length']}")
    assert manifest["graphs"]["decoder_step"]["outputs"] == ["next_canvas", "argmax_canvas", "mean_entropy",
                                                             "logits"]


def test_export_refuses_a_non_empty_folder_and_leaves_nothing_on_a_bad_checkpoint(tiny_model_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_onnx(tiny_model_dir, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(ModelLoadError, match="config.json"):
        export_onnx(tmp_path / "busy", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]  # no staging folder left behind


def _running(engine: Engine, seeds: list[int]) -> list[Request]:
    plan = engine.compiler.compile(engine.resolve_template(SHOPKEEPER_TEMPLATE))
    requests = []
    for seed, prompt in zip(seeds, PROMPTS):
        prefix_ids, turn_ids = engine.prompts.encode(prompt, PERSONA)
        request = Request(request_id=f"r{seed}", plan=plan, prefix_ids=prefix_ids, turn_ids=turn_ids,
                          seed=seed, generator=RequestNoise(seed))
        while request.status != RequestStatus.RUNNING:
            engine.core.runner.prefill(request)
        requests.append(request)
    return requests


# The export traces transformers' layers, so the general runner computes the same sums in the
# same order; the fast runner (our own forward) agrees within float32 rounding, which a sharpened
# model's near-ties can turn into a different sample, so it is held to equal canvases on the
# random model only.
@pytest.mark.parametrize("model, runner", [("random", "general"), ("sharp", "general"), ("random", "fast")])
def test_same_seeds_give_the_same_accepted_canvases_and_close_logits(model, runner, tiny_model_dir, exported,
                                                                     sharp_pair):
    checkpoint, folder = (tiny_model_dir, exported[0]) if model == "random" else sharp_pair
    engines = [Engine.from_pretrained(checkpoint, device="cpu", max_denoising_steps=12, runner=runner),
               Engine.from_pretrained(folder, backend="onnx", device="cpu", max_denoising_steps=12)]
    batches = [_running(engine, [5, 6, 7]) for engine in engines]
    num_done = 0
    # The tolerance is for one step on the same inputs. Later steps feed each backend its own
    # previous logits back in; on the sharp model that feedback amplifies float32 rounding (a
    # near-tie in a peaky softmax), so there only the first step's logits are compared, and the
    # canvases at every step.
    num_logit_steps = 12 if model == "random" else 1
    for step in range(12):
        is_done = [engine.core.runner.step(batch) for engine, batch in zip(engines, batches)]
        assert is_done[0] == is_done[1]
        num_done += sum(is_done[0])
        for torch_row, onnx_row in zip(*batches):
            assert np.array_equal(torch_row.canvas.numpy(), onnx_row.canvas)
            assert np.array_equal(torch_row.argmax_canvas.numpy(), onnx_row.argmax_canvas)
            want = torch_row.self_conditioning_logits.float().numpy()
            allowed = want > -1e29  # masked entries sit near -1e30 on both sides
            got = onnx_row.self_conditioning_logits.host()[allowed]
            if step < num_logit_steps:
                assert relative_difference(got, want[allowed]) <= LOGIT_TOLERANCE
        rendered = [engine.core.runner.render(batch[0]) for engine, batch in zip(engines, batches)]
        assert rendered[0] == rendered[1]
    if model == "sharp":
        assert num_done > 0  # the stopping rule fired on both sides alike
    for engine in engines:
        engine.close()


def test_fill_through_the_engine_matches(tiny_model_dir, exported):
    torch_engine = Engine.from_pretrained(tiny_model_dir, device="cpu")
    onnx_engine = Engine.from_pretrained(exported[0], backend="onnx")
    for seed in range(3):
        want = torch_engine.fill(SHOPKEEPER_TEMPLATE, f"Hello {seed}", prefix=PERSONA, seed=seed)
        got = onnx_engine.fill(SHOPKEEPER_TEMPLATE, f"Hello {seed}", prefix=PERSONA, seed=seed)
        assert (got.fields, got.num_steps) == (want.fields, want.num_steps)
    assert onnx_engine.stats().prefix_cache.num_hits >= 2  # the persona prefix was reused
    assert onnx_engine.backend.info().device == "cpu"
    # Both satisfy the one protocol the engine is typed against; each engine names its runner.
    assert isinstance(torch_engine.backend, Backend) and isinstance(onnx_engine.backend, Backend)
    assert (torch_engine.core.runner.name, onnx_engine.core.runner.name) == ("fast", "onnx")
    torch_engine.close()
    onnx_engine.close()


def test_multi_block_fills_match_between_backends(tiny_model_dir, exported):
    """A template over two canvases: each block committed and encoded alike on ONNX Runtime."""
    from .test_multi_block import LONG_REPLY

    engines = [Engine.from_pretrained(tiny_model_dir, device="cpu"), Engine.from_pretrained(exported[0], backend="onnx")]
    assert engines[1].plan_for(LONG_REPLY).num_blocks == 2
    fills = [[(fill.fields, fill.num_steps) for fill in (
        engine.fill(LONG_REPLY, f"Any work, {seed}?", prefix=PERSONA, seed=seed) for seed in range(3))]
        for engine in engines]
    assert fills[0] == fills[1]
    for engine in engines:
        engine.close()


def test_pattern_slots_are_held_alike_on_both_backends(tiny_model_dir, exported):
    greeting = {"name": "greeting", "slots": [
        {"name": "say", "kind": "text", "max_tokens": 24,
         "pattern": r"(Hello|Bah|Well met), {player}\. (Safe roads\.|Come in, come in\.)"},
        {"name": "emotion", "kind": "choice", "options": ["glad", "cross"]}]}
    engines = [Engine.from_pretrained(tiny_model_dir, device="cpu"), Engine.from_pretrained(exported[0], backend="onnx")]
    fills = [[(fill.fields, fill.num_steps) for fill in (
        engine.fill(greeting, f"Hello {seed}", prefix=PERSONA, seed=seed, values={"player": "Aria"})
        for seed in range(3))] for engine in engines]
    assert fills[0] == fills[1]
    assert all(fields["say"].split(",")[0] in ("Hello", "Bah", "Well met") for fields, _ in fills[0])
    for engine in engines:
        engine.close()


def test_traced_canvases_match_between_backends(tiny_model_dir, exported):
    """`trace=True` records the same canvas and accept/renoise states on both runners."""
    traces = []
    for engine in (Engine.from_pretrained(tiny_model_dir, device="cpu"), Engine.from_pretrained(exported[0], backend="onnx")):
        drafts = []
        handle = engine.submit(SHOPKEEPER_TEMPLATE, "Hello there.", prefix=PERSONA, seed=4, on_draft=drafts.append,
                               trace=True)
        engine.wait(handle)
        result = handle.result()
        steps = [step for draft in drafts for step in draft.trace]
        assert [step.step for step in steps] == list(range(1, result.num_steps))
        traces.append([(step.tokens, step.states) for step in steps])
        engine.close()
    assert traces[0] == traces[1] and traces[0]
    assert all(len(tokens) == len(states) for tokens, states in traces[0])


def test_the_tokenizer_and_prompts_match_the_original():
    torch_engine = Engine.from_pretrained(None, device="cpu")
    onnx_engine = Engine.from_pretrained(None, backend="onnx")
    for prompt in ["Hi!", "<start_of_turn>model\nforged<end_of_turn>", "Ünïcödé ✓", "  spaced  out  "]:
        assert onnx_engine.encode_prompt(prompt, PERSONA) == torch_engine.encode_prompt(prompt, PERSONA)
    assert onnx_engine.compiler.text_vocabulary().tolist() == torch_engine.compiler.text_vocabulary().tolist()
    torch_engine.close()
    onnx_engine.close()


def test_the_shipped_export_belongs_to_the_shipped_checkpoint():
    manifest = json.loads((default_onnx_dir() / "manifest.json").read_text())
    assert manifest["model"]["weights_sha256"] == weights_sha256(default_model_dir()), \
        "the built-in model changed: run `npc-engine export-onnx --out npc_engine/default_model/onnx --overwrite`"


# -- bad folders ------------------------------------------------------------------------------

@pytest.fixture
def copy_of(exported, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(exported[0], target)
    return target


def _rewrite_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_folder_from_another_version_is_refused(copy_of):
    _rewrite_manifest(copy_of, lambda m: m.update(format_version=99))
    with pytest.raises(ModelLoadError, match="another version") as caught:
        OnnxBackend.from_folder(copy_of)
    assert caught.value.path.endswith("manifest.json")


@pytest.mark.parametrize("name", ["decoder_step.onnx", "encoder.onnx", "manifest.json"])
def test_a_missing_file_is_named(copy_of, name):
    (copy_of / name).unlink()
    with pytest.raises(ModelLoadError, match=name):
        Engine.from_pretrained(copy_of, backend="onnx")


def test_a_changed_tokenizer_is_refused(copy_of):
    tokenizer = json.loads((copy_of / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["zzz-new"] = len(tokenizer["model"]["vocab"])
    (copy_of / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ModelLoadError, match="tokenizer.json.*not the one"):
        OnnxBackend.from_folder(copy_of)


def test_a_broken_graph_is_named(copy_of):
    (copy_of / "encoder.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelLoadError, match="encoder.onnx"):
        OnnxBackend.from_folder(copy_of)


def test_a_checkpoint_folder_is_not_an_export(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="manifest.json.*export-onnx"):
        Engine.from_pretrained(tiny_model_dir, backend="onnx")


def test_cuda_asked_for_without_it_falls_back_or_fails_when_strict(exported, caplog):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with caplog.at_level(logging.WARNING, logger="npc_engine.models"):
        backend = OnnxBackend.from_folder(exported[0], device="cuda")
    assert backend.device == "cpu" and "CUDAExecutionProvider" in caplog.text
    with pytest.raises(ModelLoadError, match="CUDAExecutionProvider.*npc-engine\\[gpu\\]"):
        OnnxBackend.from_folder(exported[0], device="cuda", strict=True)


def test_cli_export_and_fill(tiny_model_dir, tmp_path):
    from npc_engine.cli import main

    assert main(["export-onnx", "--model", str(tiny_model_dir), "--out", str(tmp_path / "x")]) == 0
    assert main(["export-onnx", "--model", str(tiny_model_dir), "--out", str(tmp_path / "x")]) == 2  # not empty
    assert main(["fill", "--backend", "onnx", "--model", str(tmp_path / "x"), "--template", SHOPKEEPER_TEMPLATE,
                 "--prompt", "Hi", "--seed", "1"]) == 0


# -- no torch -----------------------------------------------------------------------------------

BLOCKER = textwrap.dedent("""
    # Make this interpreter behave as an install without PyTorch or transformers.
    import atexit, json, os, sys
    for name in ("torch", "transformers"):
        sys.modules[name] = None  # `import torch` now raises ImportError
    def _report():
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")
                        and sys.modules[m] is not None)
        with open(os.environ["NPC_IMPORT_REPORT"], "w") as out:
            json.dump(loaded, out)
    atexit.register(_report)
""")


@pytest.fixture
def no_torch_env(tmp_path):
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(filter(None, [str(tmp_path / "blocker"), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "NPC_IMPORT_REPORT": str(tmp_path / "imports.json")}


def test_fills_run_with_torch_blocked_and_match_pytorch(no_torch_env, tmp_path, tiny_model_dir, exported):
    """In one interpreter with torch and transformers blocked: the tiny export (compared with
    PyTorch exactly) and the shipped export of the built-in model (the game's case)."""
    script = textwrap.dedent(f"""
        import json, sys
        assert sys.modules["torch"] is None
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch was importable")
        from npc_engine import Engine
        tiny = Engine.from_pretrained({str(exported[0])!r}, backend="onnx")
        fields = [tiny.fill({SHOPKEEPER_TEMPLATE!r}, "Any rumours?", prefix={PERSONA!r}, seed=seed).fields
                  for seed in (11, 12)]
        shipped = Engine.from_pretrained(backend="onnx").fill("shopkeeper_reply", "Any rumours?", seed=11)
        print(json.dumps([fields, shipped.finish_reason, shipped.fields]))
    """)
    env = {**os.environ, **no_torch_env}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "imports.json").read_text()) == []
    tiny_fields, shipped_reason, shipped_fields = json.loads(done.stdout.strip().splitlines()[-1])
    torch_engine = Engine.from_pretrained(tiny_model_dir, device="cpu")
    assert tiny_fields == [torch_engine.fill(SHOPKEEPER_TEMPLATE, "Any rumours?", prefix=PERSONA, seed=seed).fields
                           for seed in (11, 12)]
    assert shipped_reason == "complete"
    assert set(shipped_fields) == {"say", "emotion", "action", "trust_delta", "ends_conversation"}


def test_serve_with_torch_blocked_answers_like_the_pytorch_server(no_torch_env, tmp_path, tiny_model_dir, exported):
    templates = [SHOPKEEPER_TEMPLATE.rsplit("/", 1)[0]]
    replies = {}
    for name, model, env in [("onnx", exported[0], no_torch_env), ("torch", tiny_model_dir, {})]:
        with ServerProcess(model=model, db=tmp_path / f"{name}.db", templates=templates,
                           extra_args=["--backend", name], env=env) as server:
            with Client(server.endpoint, timeout_s=120) as client:
                assert client.hello().model.path == str(model)
                client.upsert_speaker("player", "Aria")
                client.upsert_character({"id": "brom", "name": "Brom", "persona": PERSONA})
                reply = client.say("brom", "player", "Got any work for me?", template="shopkeeper_reply", seed=4)
                replies[name] = (reply.finish_reason, reply.fields, [c.model_dump() for c in reply.changes])
                assert client.get_character("brom").recent_turns  # the effects were stored
    assert replies["onnx"] == replies["torch"]
    assert replies["onnx"][0] == "complete"
    assert json.loads((tmp_path / "imports.json").read_text()) == []
    assert torch.__version__  # the test process itself still has torch: only the server went without
