"""One version everywhere a developer reads one: the Python package, the Unity package, the Godot
addon and the Unity CHANGELOG's latest release; and no placeholder install URL in the docs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import npc_engine

ROOT = Path(__file__).resolve().parent.parent


def test_the_python_unity_and_godot_packages_share_one_version():
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    unity = json.loads((ROOT / "bridges" / "unity" / "package.json").read_text())["version"]
    plugin = (ROOT / "bridges" / "godot" / "addons" / "npc_engine" / "plugin.cfg").read_text()
    godot = re.search(r'^version="([^"]+)"', plugin, re.M).group(1)
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "bridges" / "unity" / "CHANGELOG.md").read_text(), re.M)
    assert python == npc_engine.__version__ == unity == godot == released[0], (python, unity, godot, released)


def test_no_placeholder_install_urls_remain():
    placeholders = re.compile(r"github\.com/OWNER|/OWNER/|<owner>|YOUR_ORG", re.I)
    found = [str(path.relative_to(ROOT)) for path in [*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md"),
                                                      *ROOT.glob("bridges/**/*.md")]
             if placeholders.search(path.read_text(encoding="utf-8"))]
    assert found == []
