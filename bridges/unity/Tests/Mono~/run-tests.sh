#!/usr/bin/env bash
# Builds the package with mono's mcs (C# 7.2, warnings as errors) and runs its tests under mono.
#   bridges/unity/Tests/Mono~/run-tests.sh [FILTER]
# The core compiles with no UnityEngine at all; the Unity layer and the sample against the stub
# in this folder, the Editor folder against the UnityEditor stub. Live-server tests need
# NPC_ENGINE_PYTHON + NPC_ENGINE_SERVE_ARGS (the tests start, kill and restart the server) or NPC_ENGINE_ENDPOINT; tests/test_unity_bridge.py sets them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PACKAGE="$(cd "$HERE/../.." && pwd)"
OUT="${NPC_UNITY_BUILD_DIR:-$(mktemp -d)}"
mkdir -p "$OUT"
NUNIT="$(ls /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll 2>/dev/null | head -n1 || true)"
if ! command -v mcs >/dev/null || ! command -v mono >/dev/null || [ -z "$NUNIT" ]; then
    echo "run-tests: needs mono-mcs and libnunit-cil-dev (bridges/unity/Tests/Mono~/install-mono.sh)" >&2
    exit 2
fi
MCS=(mcs -langversion:7.2 -warnaserror -warn:4 -nologo)
cp "$NUNIT" "$OUT/"
"${MCS[@]}" -target:library -out:"$OUT/NpcEngine.Core.dll" "$PACKAGE"/Runtime/Core/*.cs
"${MCS[@]}" -target:library -out:"$OUT/UnityEngine.dll" "$HERE/UnityEngineStub.cs"
"${MCS[@]}" -target:library -out:"$OUT/NpcEngine.Unity.dll" -r:"$OUT/NpcEngine.Core.dll" -r:"$OUT/UnityEngine.dll" \
    "$PACKAGE"/Runtime/Unity/*.cs
"${MCS[@]}" -target:library -out:"$OUT/UnityEditor.dll" -r:"$OUT/UnityEngine.dll" "$HERE/UnityEditorStub.cs"
"${MCS[@]}" -target:library -out:"$OUT/NpcEngine.Editor.dll" -r:"$OUT/NpcEngine.Core.dll" -r:"$OUT/UnityEngine.dll" \
    -r:"$OUT/UnityEditor.dll" "$PACKAGE"/Editor/*.cs
"${MCS[@]}" -target:library -out:"$OUT/NpcEngine.Samples.dll" -r:"$OUT/NpcEngine.Core.dll" -r:"$OUT/NpcEngine.Unity.dll" \
    -r:"$OUT/UnityEngine.dll" "$PACKAGE"/Samples~/TalkingNpc/*.cs
"${MCS[@]}" -target:exe -out:"$OUT/NpcEngine.Tests.exe" -r:"$OUT/NpcEngine.Core.dll" -r:"$OUT/NpcEngine.Unity.dll" \
    -r:"$OUT/NpcEngine.Samples.dll" -r:"$OUT/UnityEngine.dll" -r:"$OUT/nunit.framework.dll" \
    -r:"$OUT/UnityEditor.dll" -r:"$OUT/NpcEngine.Editor.dll" \
    "$PACKAGE"/Tests/Runtime/*.cs "$HERE"/ComponentTests.cs "$HERE"/EditorTests.cs "$HERE"/Runner.cs
echo "run-tests: built with $(mcs --version) into $OUT"
exec mono --debug "$OUT/NpcEngine.Tests.exe" "${1:-}"
