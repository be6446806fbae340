"""`npc-engine bundle`: built here, copied elsewhere, run with a clean environment (no venv on
PATH, no PYTHONPATH): it answers hello and a say on ONNX Runtime with the built-in model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from npc_engine import __version__
from npc_engine.cli_bundle import EXECUTABLE, MANIFEST, build_bundle
from npc_engine.client import Client


@pytest.fixture(scope="module")
def relocated(tmp_path_factory):
    pytest.importorskip("PyInstaller", reason="npc-engine bundle needs the [bundle] extra")
    built = tmp_path_factory.mktemp("built") / "npc-engine"
    size_mb, start_s = build_bundle(built)
    assert size_mb > 10 and start_s is not None and start_s > 0
    moved = tmp_path_factory.mktemp("elsewhere") / "game" / "npc-engine"
    shutil.copytree(built, moved, symlinks=True)
    shutil.rmtree(built)  # nothing may point back at the build folder
    return moved


@pytest.mark.skipif(sys.platform == "win32", reason="the clean environment below is POSIX's")
def test_the_bundle_runs_relocated_with_a_clean_environment(relocated, tmp_path):
    server = subprocess.Popen([str(relocated / EXECUTABLE), "--port", "0", "--db", str(tmp_path / "npc.db"),
                               "--exit-on-stdin-eof", "--threads", "1"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    try:
        line = server.stdout.readline()
        assert line.startswith("npc-engine serving on ") and "on onnx/cpu" in line, (line, server.stderr.read())
        with Client(line.split()[3], timeout_s=120) as client:
            assert client.hello().model.path.startswith(str(relocated))
            client.upsert_speaker("player", "Aria")
            client.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith."})
            reply = client.say("brom", "player", "Any work?", template="shopkeeper_reply", seed=3)
        assert reply.finish_reason in ("complete", "deadline") and reply.fields["say"]
        server.stdin.close()
        assert server.wait(20) == 0
    finally:
        if server.poll() is None:
            server.kill()


def test_the_bundle_says_what_it_is_for(relocated):
    manifest = json.loads((relocated / MANIFEST).read_text())
    expected_os = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    assert manifest["os"] == expected_os and manifest["executable"] == EXECUTABLE
    assert manifest["npc_engine_version"] == __version__ and manifest["backend"] == "onnx"
    assert manifest["protocol_version"].count(".") == 1 and manifest["format"] == 1


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("readelf") is None,
                    reason="symbols are stripped on Linux only")
def test_the_bundle_libraries_are_stripped_but_vendored_ones_are_not(relocated):
    def has_symbols(library):
        return ".symtab" in subprocess.run(["readelf", "-S", str(library)], capture_output=True, text=True).stdout

    import numpy

    own = next(relocated.rglob("libpython3*.so*"))
    assert not has_symbols(own)
    installed = Path(numpy.__file__).parent.parent / "numpy.libs"
    vendored = sorted((relocated / "_internal" / "numpy.libs").iterdir())
    assert vendored  # numpy's OpenBLAS, byte for byte as auditwheel wrote it: strip breaks it
    assert all(p.read_bytes() == (installed / p.name).read_bytes() for p in vendored)


def test_bundle_refuses_a_non_empty_folder(tmp_path):
    pytest.importorskip("PyInstaller", reason="npc-engine bundle needs the [bundle] extra")
    (tmp_path / "keep.txt").write_text("mine")
    from npc_engine import ConfigError
    with pytest.raises(ConfigError, match="not empty"):
        build_bundle(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"
