"""Layers import only downward (DESIGN.md, "Layers"), checked two ways:

- at run time: a fresh interpreter imports one layer and reports which modules got loaded; none
  of that layer's forbidden modules may be among them (so a lazy export or a deferred import
  cannot hide a dependency that the first call would pull in);
- statically: every import statement in the package, deferred ones inside functions included,
  points at the same layer or one below it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "npc_engine"

# What a layer's import must not load. "npc_engine.x" also forbids its submodules.
_LEAF_FORBIDDEN = ["npc_engine.engine", "npc_engine.characters.store", "npc_engine.characters.rows",
                   "npc_engine.characters.prompt", "npc_engine.dialogue", "npc_engine.server",
                   "npc_engine.templates.compiler", "npc_engine.models", "npc_engine.diffusion",
                   "numpy", "torch", "transformers", "onnxruntime"]
_BELOW_ENGINE_FORBIDDEN = ["npc_engine.engine", "npc_engine.characters", "npc_engine.dialogue",
                           "npc_engine.server", "npc_engine.cluster", "npc_engine.training", "npc_engine.client"]
FORBIDDEN = {
    "npc_engine.client": _LEAF_FORBIDDEN,
    "npc_engine.protocol": _LEAF_FORBIDDEN,
    "npc_engine.characters.model": _LEAF_FORBIDDEN,
    "npc_engine.templates.spec": _LEAF_FORBIDDEN,
    "npc_engine": _LEAF_FORBIDDEN + ["npc_engine.client", "npc_engine.protocol", "pydantic"],
    "npc_engine.engine": ["npc_engine.server", "npc_engine.characters", "npc_engine.dialogue",
                          "npc_engine.training", "npc_engine.cluster", "npc_engine.client", "npc_engine.protocol"],
    "npc_engine.templates": _BELOW_ENGINE_FORBIDDEN,
    "npc_engine.templates.compiler": _BELOW_ENGINE_FORBIDDEN,
    "npc_engine.diffusion": _BELOW_ENGINE_FORBIDDEN,
    "npc_engine.diffusion.sampler": _BELOW_ENGINE_FORBIDDEN,
    "npc_engine.models": _BELOW_ENGINE_FORBIDDEN,
    "npc_engine.models.backend": _BELOW_ENGINE_FORBIDDEN,
    "npc_engine.models.onnx_backend": _BELOW_ENGINE_FORBIDDEN,
    # Characters and the engine sit side by side: neither imports the other (the prompt encoder
    # they share lives with the tokenizer, in models).
    "npc_engine.characters": ["npc_engine.engine", "npc_engine.dialogue", "npc_engine.server", "npc_engine.cluster",
                              "npc_engine.client", "npc_engine.training"],
    "npc_engine.characters.prompt": ["npc_engine.engine", "npc_engine.dialogue"],
    "npc_engine.characters.store": ["npc_engine.engine", "npc_engine.dialogue", "npc_engine.server",
                                    "npc_engine.client", "npc_engine.training", "numpy", "torch"],
    "npc_engine.dialogue.service": ["npc_engine.server", "npc_engine.cluster", "npc_engine.client",
                                    "npc_engine.protocol", "npc_engine.training", "zmq"],
    "npc_engine.server": ["npc_engine.cluster", "npc_engine.client", "npc_engine.training", "ray"],
    # The studio is a client like the bridges: the protocol and nothing of the engine.
    "npc_engine.studio": _LEAF_FORBIDDEN + ["npc_engine.cluster", "npc_engine.training"],
}

_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_by(module: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, module], capture_output=True, text=True, timeout=300,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _violations(loaded: list[str], forbidden: list[str]) -> list[str]:
    return [name for name in loaded for bad in forbidden if name == bad or name.startswith(bad + ".")]


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_importing_a_layer_loads_nothing_above_or_beside_it(module):
    loaded = _loaded_by(module)
    assert module in loaded
    assert _violations(loaded, FORBIDDEN[module]) == []


def test_the_runtime_check_sees_a_forbidden_module():
    # The probe is strict: the server does load the engine, so the client's list would flag it.
    assert "npc_engine.engine" in _violations(_loaded_by("npc_engine.server"), _LEAF_FORBIDDEN)


# Static ranks: a module may import its own layer and the ones ranked below it. The client and
# the protocol are leaves: besides each other they may import only the pure spec and state types.
RANK = {"_lazy": 0, "errors": 0, "bounds": 0, "model_info": 0, "models": 1, "diffusion": 2, "templates": 3, "engine": 4, "characters": 5,
        "dialogue": 6, "protocol": 7, "server": 8, "cluster": 9, "export": 10, "training": 10, "demo": 11,
        "studio": 11, "cli": 12, "cli_serve": 12, "cli_studio": 12, "cli_training": 12, "__main__": 13}
LEAVES = {"client", "protocol"}
LEAF_MAY_IMPORT = {"npc_engine", "npc_engine._lazy", "npc_engine.errors", "npc_engine.bounds", "npc_engine.model_info",
                   "npc_engine.characters",
                   "npc_engine.characters.model", "npc_engine.templates", "npc_engine.templates.spec",
                   "npc_engine.templates.effects", "npc_engine.templates.placeholders"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            # A lazy-exports table names submodules as strings: ".store" is an import too.
            found += [(node.lineno, package + value) for value in set(ast.literal_eval(node.value).values())]
    return [(line, name) for line, name in found if name == "npc_engine" or name.startswith("npc_engine.")]


def _upward_imports() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        layer = _layer(module)
        if layer in ("", "__init__"):
            continue  # the package root re-exports the public API lazily
        for line, target in _imports(path):
            target_layer = _layer(target)
            if layer in LEAVES:
                if target_layer not in LEAVES and target not in LEAF_MAY_IMPORT:
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {target}")
            elif target_layer in LEAVES and RANK.get(layer, 99) <= RANK["protocol"]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {target}")
            elif RANK.get(target_layer, 0) > RANK.get(layer, 99):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {target}")
    return bad


def test_every_import_statement_points_down():
    assert _upward_imports() == []


def test_the_static_check_sees_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "npc_engine"
    (fake / "engine").mkdir(parents=True)
    (fake / "engine" / "core.py").write_text("def f():\n    from ..characters.store import Store\n")
    (fake / "client").mkdir()
    (fake / "client" / "c.py").write_text("from ..engine import Engine\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _upward_imports() == ["npc_engine/client/c.py:1 npc_engine.engine",
                                 "npc_engine/engine/core.py:2 npc_engine.characters.store"]
