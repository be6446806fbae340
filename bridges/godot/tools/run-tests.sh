#!/usr/bin/env bash
# Runs the addon's headless test suite: fetches Godot (cached, see fetch-godot.sh), imports the
# project, then `godot --headless --path bridges/godot -s res://tests/run_tests.gd [FILTER]`.
# Live tests need NPC_ENGINE_PYTHON and NPC_ENGINE_SERVE_ARGS_JSON (tests/test_godot_bridge.py
# sets them); NPC_ENGINE_SCHEMAS defaults to the repository's schemas/.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="$(cd "$HERE/.." && pwd)"
GODOT="$("$HERE/fetch-godot.sh")"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
# Godot writes settings and caches under XDG folders: keep them out of the user's home.
export XDG_DATA_HOME="$SCRATCH/data" XDG_CONFIG_HOME="$SCRATCH/config" XDG_CACHE_HOME="$SCRATCH/cache"
export NPC_ENGINE_SCHEMAS="${NPC_ENGINE_SCHEMAS:-$(cd "$PROJECT/../../schemas" && pwd)}"
export NPC_GODOT_TEST_FILTER="${1:-${NPC_GODOT_TEST_FILTER:-}}"
"$GODOT" --headless --path "$PROJECT" --import >/dev/null 2>&1 || true
exec timeout 900 "$GODOT" --headless --path "$PROJECT" -s res://tests/run_tests.gd
