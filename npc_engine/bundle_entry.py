"""The executable of a bundle built by `npc-engine bundle`: `npc-engine serve` on ONNX Runtime,
with the built-in model and its templates inside the bundle. It takes the same flags as serve."""

import sys

from npc_engine.cli import entry

if __name__ == "__main__":
    entry(["serve", "--backend", "onnx", *sys.argv[1:]])
