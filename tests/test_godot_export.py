"""The Godot addon's export plugin in a real headless export: a project with the addon, a server
bundle folder and a Linux preset exported with `godot --headless --export-release` against
Debian's release template (bridges/godot/tools/fetch-godot.sh --template). The bundle lands next
to the game with its executable bit; a bundle for another CPU or OS stops the export (exit code
not 0) with a message naming the bundle needed. NPC_SKIP_BRIDGES=1 skips it."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "bridges" / "godot" / "tools"


@pytest.fixture(scope="module")
def godot():
    if os.environ.get("NPC_SKIP_BRIDGES") == "1":
        pytest.skip("NPC_SKIP_BRIDGES=1")
    editor = subprocess.run([str(TOOLS / "fetch-godot.sh")], capture_output=True, text=True, check=True)
    template = subprocess.run([str(TOOLS / "fetch-godot.sh"), "--template"], capture_output=True, text=True,
                              check=True)
    return editor.stdout.strip().splitlines()[-1], template.stdout.strip().splitlines()[-1]


def _project(tmp_path: Path, template: str, manifest: dict) -> Path:
    project = tmp_path / "game"
    shutil.copytree(ROOT / "bridges" / "godot" / "addons", project / "addons",
                    ignore=shutil.ignore_patterns("*.uid"))
    bundle = tmp_path / "bundle"
    (bundle / "_internal" / "lib").mkdir(parents=True)
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    server = bundle / "npc-engine-server"
    server.write_text("#!/bin/sh\necho stand-in\n")
    server.chmod(0o755)
    (bundle / "_internal" / "lib" / "libstandin.so.1").write_bytes(b"\x7fELF stand-in")
    (bundle / "_internal" / "lib" / "libstandin.so").symlink_to("libstandin.so.1")
    (bundle / ".gdignore").write_text("")
    (project / "project.godot").write_text(
        'config_version=5\n\n[application]\n\nconfig/name="export check"\n\n'
        '[autoload]\n\nNpcEngine="*res://addons/npc_engine/npc_client.gd"\n\n'
        '[editor_plugins]\n\nenabled=PackedStringArray("res://addons/npc_engine/plugin.cfg")\n\n'
        f'[npc_engine]\n\nexport/bundle_folder="{bundle}"\n')
    (project / "export_presets.cfg").write_text(
        '[preset.0]\n\nname="Linux"\nplatform="Linux"\nrunnable=true\nexport_filter="all_resources"\n'
        'include_filter=""\nexclude_filter=""\nexport_path="out/game.x86_64"\n\n[preset.0.options]\n\n'
        f'binary_format/architecture="x86_64"\ncustom_template/release="{template}"\n'
        f'custom_template/debug="{template}"\n')
    return project


def _export(godot: str, project: Path) -> subprocess.CompletedProcess:
    scratch = project.parent / "xdg"
    env = dict(os.environ, XDG_DATA_HOME=str(scratch / "data"), XDG_CONFIG_HOME=str(scratch / "config"),
               XDG_CACHE_HOME=str(scratch / "cache"))
    (project / "out").mkdir(exist_ok=True)
    subprocess.run([godot, "--headless", "--path", str(project), "--import"], env=env, capture_output=True,
                   timeout=300)
    return subprocess.run([godot, "--headless", "--path", str(project), "--export-release", "Linux",
                           "out/game.x86_64"], env=env, capture_output=True, text=True, timeout=300)


LINUX = {"format": 1, "executable": "npc-engine-server", "os": "linux", "machine": "x86_64",
         "npc_engine_version": "0.1.0", "protocol_version": "1.4", "backend": "onnx"}


def test_a_linux_export_puts_the_bundle_beside_the_game(godot, tmp_path):
    editor, template = godot
    project = _project(tmp_path, template, LINUX)
    done = _export(editor, project)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    placed = project / "out" / "npc-engine"
    assert (project / "out" / "game.x86_64").is_file()
    assert json.loads((placed / "bundle.json").read_text())["machine"] == "x86_64"
    assert (placed / "npc-engine-server").stat().st_mode & stat.S_IXUSR  # still executable
    assert (placed / "_internal" / "lib" / "libstandin.so").is_symlink()
    assert (placed / "_internal" / "lib" / "libstandin.so").read_bytes() == b"\x7fELF stand-in"
    assert not (placed / ".gdignore").exists()
    assert "server bundle copied to" in output and "ERROR: npc-engine" not in output


@pytest.mark.parametrize("manifest, reason", [
    ({**LINUX, "machine": "aarch64"}, "built for arm64 CPUs and does not run on x86_64"),
    ({**LINUX, "os": "windows", "machine": "AMD64"}, "built on windows and runs there only, not on linux"),
])
def test_a_bundle_for_another_platform_stops_the_export(godot, tmp_path, manifest, reason):
    editor, template = godot
    project = _project(tmp_path, template, manifest)
    done = _export(editor, project)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-4000:]
    assert reason in output and "a linux x86_64 bundle" in output
    assert 'export for preset "Linux" failed' in output
    assert not (project / "out" / "npc-engine" / "bundle.json").exists()
