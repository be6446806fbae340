"""Every public entry point raises only `NpcEngineError` subclasses (the tree in errors.py):
bad settings, a taken port, a bad endpoint, each with its documented class; and a static check
that no module raises a bare built-in exception where a caller would see it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from npc_engine import (
    BindError,
    ClusterError,
    ConfigError,
    Engine,
    EngineStateError,
    NpcEngineError,
    Store,
)
from npc_engine import errors as error_module
from npc_engine.client import Client
from npc_engine.diffusion import DiffusionSettings
from npc_engine.server import Server

from .server_helpers import make_server, running

PACKAGE = Path(__file__).resolve().parents[1] / "npc_engine"


@pytest.mark.parametrize("call, error, match", [
    (lambda d: Engine.from_pretrained(d, backend="tensorflow"), ConfigError, "backend must be"),
    (lambda d: Engine.from_pretrained(d, max_denoising_steps=0), ConfigError, "max_denoising_steps"),
    (lambda d: Engine.from_pretrained(d, dtype="float7"), ConfigError, "unknown dtype"),
    (lambda d: Engine.from_pretrained(backend="onnx", device="tpu"), ConfigError, "device must be one of"),
    (lambda d: Engine.from_pretrained(backend="onnx", num_threads=0), ConfigError, "num_threads"),
    (lambda d: DiffusionSettings(t_min=0.9, t_max=0.1), ConfigError, "t_min < t_max"),
    (lambda d: Client("not-an-endpoint"), ConfigError, "cannot connect to endpoint"),
])
def test_bad_settings_are_config_errors(tiny_model_dir, call, error, match):
    with pytest.raises(error, match=match) as caught:
        call(tiny_model_dir)
    assert isinstance(caught.value, NpcEngineError) and isinstance(caught.value, ValueError)  # as before


def test_a_taken_port_is_a_bind_error(backend):
    with running(make_server(backend)) as first:
        second = Server(first.engine, Store(":memory:"), bind=first.endpoint)
        with pytest.raises(BindError, match="cannot bind") as caught:
            second.start()
        assert isinstance(caught.value, OSError) and caught.value.endpoint == first.endpoint


def test_drafts_without_streaming_is_an_engine_state_error(engine):
    handle = engine.submit("schemas/templates/shopkeeper_reply.json", "Hi", seed=1)
    with pytest.raises(EngineStateError, match="stream=True"):
        next(handle.drafts())
    engine.wait(handle)


def test_every_documented_error_is_in_the_tree():
    for name in error_module.__all__:
        assert issubclass(getattr(error_module, name), NpcEngineError), name
        assert name in error_module.__doc__, f"{name} is not in the documented tree"
    assert issubclass(ClusterError, RuntimeError) and issubclass(BindError, ConfigError)


# Built-in raises that stay: each is never seen by a caller as such.
ALLOWED = {
    # pydantic validators: pydantic turns them into ValidationError, which the store, the protocol
    # and the template loader turn into StateError / ProtocolError / TemplateError.
    ("characters/model.py", "check"), ("characters/model.py", "check_flag_value"),
    # wrapped into StoreError by Store.__init__
    ("characters/schema.py", "_check_not_newer"),
    # wrapped into DataError with the file and line by load_samples
    ("training/data.py", "_parse_line"),
    # called only from the world's pydantic validators; load_world turns them into DataError
    ("training/world.py", "_check_text"),
    # the test-vector generator (a developer tool behind `npc-engine schemas`)
    ("protocol/vectors.py", "typed"),
}
_VALIDATOR_DECORATORS = {"field_validator", "model_validator"}
_BUILTINS = {"ValueError", "TypeError", "RuntimeError", "OSError", "KeyError", "IndexError", "TimeoutError",
             "AssertionError", "Exception", "LookupError"}


def _bare_raises(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()

        def visit(node: ast.AST, function: ast.FunctionDef | None) -> None:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function = node
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and \
                    getattr(node.exc.func, "id", None) in _BUILTINS:
                decorators = {getattr(d.func if isinstance(d, ast.Call) else d, "id", None)
                              for d in (function.decorator_list if function else [])}
                name = function.name if function else "<module>"
                if not decorators & _VALIDATOR_DECORATORS and (relative, name) not in ALLOWED:
                    found.append(f"{relative}:{node.lineno} {name}: raise {node.exc.func.id}")
            for child in ast.iter_child_nodes(node):
                visit(child, function)

        visit(ast.parse(path.read_text()), None)
    return found


def test_no_bare_builtin_raise_reaches_a_caller():
    assert _bare_raises(PACKAGE) == []


def test_the_raise_scan_is_strict(tmp_path):
    (tmp_path / "x.py").write_text("def f():\n    raise ValueError('no')\n\n"
                                   "class M:\n    @field_validator('a')\n    def g(cls, v):\n        raise ValueError('ok')\n")
    assert _bare_raises(tmp_path) == ["x.py:2 f: raise ValueError"]


def test_every_error_crosses_a_process_boundary_whole():
    """A cluster's replicas and state service raise across processes (pickle): every error comes
    back as its own class with its message and fields (keyword-only ones too)."""
    import inspect
    import pickle

    values = {"message": "it went wrong", "request_id": "r1", "character_id": "brom", "field": "mood",
              "speaker_id": "player", "scopes": ["world"], "path": "state.db", "max_queued_requests": 4,
              "retry_after_ms": 250.0, "largest_batch_size": 2, "snapshot_version": 9, "supported_version": 4,
              "endpoint": "tcp://127.0.0.1:1", "code": "busy", "details": {"limit": "x"}, "template": "t",
              "slot": "s", "num_required_tokens": 300, "canvas_length": 256}
    for name in error_module.__all__:
        cls = getattr(error_module, name)
        parameters = inspect.signature(cls.__init__).parameters
        kwargs = {p: values[p] for p in parameters if p not in ("self", "message") and p in values}
        error = cls("it went wrong", **kwargs)
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is cls and str(again) == str(error), name
        assert {k: v for k, v in vars(again).items()} == vars(error), name
