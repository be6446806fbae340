"""The Unity bridge (bridges/unity): built with mono's mcs under -warnaserror, its NUnit tests run
under mono against a live `npc-engine serve` with the tiny model, which the C# tests start, kill
and restart themselves (reconnect test). Needs mono-mcs + libnunit-cil-dev: `./npc test` installs
them (bridges/unity/Tests/Mono~/install-mono.sh); NPC_SKIP_BRIDGES=1 skips this on a machine
without them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bridges" / "unity"


def _require_mono() -> None:
    if shutil.which("mcs") and shutil.which("mono"):
        return
    if os.environ.get("NPC_SKIP_BRIDGES") == "1":
        pytest.skip("NPC_SKIP_BRIDGES=1 and mono is not installed")
    pytest.fail("mono is not installed: run bridges/unity/Tests/Mono~/install-mono.sh (./npc test does)")


def test_unity_bridge_suite_against_a_live_server(tiny_model_dir, tmp_path):
    serve_args = ["-m", "npc_engine.cli", "serve", "--model", str(tiny_model_dir), "--db", str(tmp_path / "state.db"),
                  "--templates", str(ROOT / "schemas" / "templates"),
                  # Slowed on purpose (about one denoising step per 50 ms frame) so a cancel sent
                  # right after its say reliably arrives first.
                  "--frame-budget-ms", "1", "--target-fps", "20"]
    run_unity_suite(serve_args, tmp_path)


LAUNCHER_TESTS = {"ServerProcessTests.StartsOnAFreePortServesAndStops",
                  "ComponentTests.NpcServerRunsTheBundleInStreamingAssets",
                  "ServerProcessTests.AServerThatExitsAtOnceIsAClearErrorWithItsOutput",
                  "ComponentTests.NpcServerStartsTheServerConnectsTheClientAndStopsOnQuit",
                  "ComponentTests.SampleStartsTheDevelopmentCommand", "ComponentTests.SampleStartsTheImportedBundle"}


def run_unity_suite(serve_args: list[str], tmp_path: Path) -> None:
    """The C# suite with its live tests against servers it starts as `python SERVE_ARGS --bind ...`."""
    _require_mono()
    env = dict(os.environ, NPC_ENGINE_PYTHON=sys.executable, NPC_ENGINE_SERVE_ARGS=shlex.join(serve_args),
               NPC_ENGINE_SCHEMAS=str(ROOT / "schemas"), NPC_UNITY_BUILD_DIR=str(tmp_path / "build"))
    env.pop("NPC_ENGINE_ENDPOINT", None)
    completed = subprocess.run([str(PACKAGE / "Tests" / "Mono~" / "run-tests.sh")], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
    output = completed.stdout + completed.stderr
    print(output)
    summary = re.search(r"(\d+) passed, (\d+) failed, (\d+) ignored", output)
    assert summary, output[-3000:]
    num_passed, num_failed, num_ignored = map(int, summary.groups())
    assert completed.returncode == 0 and num_failed == 0, output[-6000:]
    # Every test runs here (the run owns the server), except that the launcher tests start
    # `npc-engine serve` themselves and so skip where the suite is given another command.
    skipped = set(re.findall(r"^SKIP (\S+):", output, re.M))
    assert len(skipped) == num_ignored
    assert skipped == (set() if "serve" in serve_args else LAUNCHER_TESTS), skipped
    assert num_passed >= 25


def test_package_layout_is_a_valid_upm_package():
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert re.fullmatch(r"[a-z0-9.-]+", manifest["name"]) and manifest["name"].count(".") >= 2
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    for folder in ("Runtime", "Tests", "Samples~"):
        assert (PACKAGE / folder).is_dir()
    for sample in manifest["samples"]:
        assert (PACKAGE / sample["path"]).is_dir(), sample
    for text in ("README.md", "CHANGELOG.md", "LICENSE.md"):
        assert (PACKAGE / text).is_file()
    # C#'s version constant and the protocol version follow the Python package and the schemas.
    protocol = (PACKAGE / "Runtime" / "Core" / "Protocol.cs").read_text()
    index = json.loads((ROOT / "schemas" / "protocol" / "index.json").read_text())
    assert f'Version = "{index["protocol_version"]}"' in protocol
    assert f'PackageVersion = "{manifest["version"]}"' in protocol


def test_every_shipped_asset_has_a_stable_meta_file():
    """Unity ignores (with a warning) files in an immutable package that lack a .meta."""
    guids = set()
    for path in sorted(PACKAGE.rglob("*")):
        relative = path.relative_to(PACKAGE)
        if any(part.endswith("~") or part.startswith(".") for part in relative.parts) or path.suffix == ".meta":
            continue
        meta = path.with_name(path.name + ".meta")
        assert meta.is_file(), f"{relative} has no .meta (run bridges/unity/Tests/Mono~/write_meta.py)"
        guid = re.search(r"^guid: ([0-9a-f]{32})$", meta.read_text(), re.M)
        assert guid and guid.group(1) not in guids, meta
        guids.add(guid.group(1))


def test_the_sample_s_character_asset_is_an_npc_character():
    """Brom.asset is hand-written YAML: its script reference must be NpcCharacter.cs's GUID and its
    fields the class's serialized fields, or Unity would import it as a broken asset."""
    asset = (PACKAGE / "Samples~" / "TalkingNpc" / "Brom.asset").read_text()
    meta = (PACKAGE / "Runtime" / "Unity" / "NpcCharacter.cs.meta").read_text()
    guid = re.search(r"^guid: ([0-9a-f]{32})$", meta, re.M).group(1)
    assert f"m_Script: {{fileID: 11500000, guid: {guid}, type: 3}}" in asset
    source = (PACKAGE / "Runtime" / "Unity" / "NpcCharacter.cs").read_text()
    declared = set(re.findall(r"^\s+public (?:string|List<string>) (\w+)\s*=", source, re.M))
    written = set(re.findall(r"^  (?!m_)(\w+):", asset, re.M))
    assert declared == written == {"id", "displayName", "persona", "speakingStyle", "knowledge", "startingMood"}
    assert re.search(r"^  id: brom$", asset, re.M) and re.search(r"^  persona: \S", asset, re.M)
    sample = (PACKAGE / "Samples~" / "TalkingNpc" / "TalkingNpc.cs").read_text()
    assert "public NpcCharacter character;" in sample
