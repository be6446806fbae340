"""`npc-engine bundle --out DIR`: a self-contained, relocatable server folder for this machine's
OS and CPU architecture (build one per platform you ship), frozen with PyInstaller.

Inside: `npc-engine-server` (the same flags as `serve`; ONNX Runtime backend), the built-in model's
ONNX export and its templates, and a private Python. No PyTorch, no `transformers`, nothing for
the player to install. After building, the command starts the bundle once from its folder with
a clean environment and reports its size and cold start (first "serving on" line).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError, ExportError

__all__ = ["EXECUTABLE", "add_bundle_command", "build_bundle", "run_bundle"]

EXECUTABLE = "npc-engine-server" + (".exe" if sys.platform == "win32" else "")
# Modules the server never imports on ONNX Runtime; excluding them keeps the bundle small.
_EXCLUDED = ("torch", "transformers", "ray", "tkinter", "yaml", "pygame", "onnx", "IPython", "matplotlib",
             "hypothesis", "pytest", "setuptools", "pip")


def add_bundle_command(commands: Any) -> None:
    bundle = commands.add_parser("bundle", help="a self-contained server folder to ship with a game (PyInstaller)")
    bundle.add_argument("--out", required=True, type=Path, help="the folder to create (must not exist or be empty)")
    bundle.add_argument("--no-check", action="store_true", help="skip starting the bundle once after building")
    bundle.set_defaults(handler=run_bundle)


def run_bundle(args: argparse.Namespace) -> int:
    size_mb, start_s = build_bundle(args.out, check=not args.no_check)
    start = f"; ready (first line) in {start_s:.2f} s" if start_s is not None else ""
    print(f"npc-engine bundle: {args.out / EXECUTABLE}: {size_mb:.1f} MB{start}")
    return 0


def build_bundle(out: Path, *, check: bool = True) -> tuple[float, float | None]:
    """Build into `out`; returns (size in MB, cold-start seconds or None). Raises ConfigError
    when PyInstaller is missing or `out` is not empty, ExportError when the build fails."""
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        raise ConfigError("npc-engine bundle needs PyInstaller: pip install 'npc-voice-engine[bundle]'") from None
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; give a new folder")
    package_root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="npc-bundle-") as scratch:
        command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--onedir", "--name", "npc-engine-server",
                   "--distpath", str(Path(scratch) / "dist"), "--workpath", str(Path(scratch) / "work"),
                   "--specpath", scratch, "--paths", str(package_root), "--collect-data", "npc_engine",
                   "--collect-submodules", "npc_engine", "--collect-binaries", "onnxruntime",
                   *[flag for module in _EXCLUDED for flag in ("--exclude-module", module)],
                   str(Path(__file__).with_name("bundle_entry.py"))]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise ExportError(f"PyInstaller failed:\n{done.stderr[-3000:]}", path=str(out))
        built = Path(scratch) / "dist" / "npc-engine-server"
        # The server runs the ONNX export; the PyTorch weights would only add weight.
        for weights in built.rglob("default_model/model.safetensors"):
            weights.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        shutil.move(str(built), str(out))
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6
    return size_mb, (cold_start_s(out) if check else None)


def cold_start_s(folder: Path, timeout_s: float = 120.0) -> float:
    """Seconds from starting the bundle (clean environment, --port 0) to its first line."""
    with tempfile.TemporaryDirectory(prefix="npc-bundle-check-") as scratch:
        env = {"HOME": scratch, "PATH": "/usr/bin:/bin"} if sys.platform != "win32" else dict(os.environ)
        started = time.perf_counter()
        server = subprocess.Popen([str(folder / EXECUTABLE), "--port", "0", "--db", str(Path(scratch) / "check.db"),
                                   "--exit-on-stdin-eof"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env, cwd=scratch)
        try:
            line = server.stdout.readline()
            took_s = time.perf_counter() - started
            if not line.startswith("npc-engine serving on "):
                raise ExportError(f"the bundle did not start: {line!r} {server.stderr.read()[-2000:]}", path=str(folder))
        finally:
            server.stdin.close()
            try:
                server.wait(timeout_s)
            except subprocess.TimeoutExpired:
                server.kill()
    return took_s
