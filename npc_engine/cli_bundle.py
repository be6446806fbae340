"""`npc-engine bundle --out DIR`: a self-contained, relocatable server folder for this machine's
OS and CPU architecture (build one per platform you ship), frozen with PyInstaller.

Inside: `npc-engine-server` (the same flags as `serve`; ONNX Runtime backend), the built-in model's
ONNX export and its templates, and a private Python. No PyTorch, no `transformers`, nothing for
the player to install. After building, the command starts the bundle once from its folder with
a clean environment and reports its size and cold start (first "serving on" line).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError, ExportError

__all__ = ["EXECUTABLE", "MANIFEST", "add_bundle_command", "build_bundle", "run_bundle"]

EXECUTABLE = "npc-engine-server" + (".exe" if sys.platform == "win32" else "")
# What a launcher or a game's build step reads to know what it holds (which OS it runs on).
MANIFEST = "bundle.json"
MANIFEST_FORMAT = 1
# Modules the server never imports on ONNX Runtime; excluding them keeps the bundle small. The
# studio is a developer's tool beside a server, not part of the one a game ships.
_EXCLUDED = ("torch", "transformers", "ray", "tkinter", "yaml", "pygame", "onnx", "IPython", "matplotlib",
             "hypothesis", "pytest", "setuptools", "pip", "npc_engine.studio", "starlette", "uvicorn", "playwright",
             "httpx")


def add_bundle_command(commands: Any) -> None:
    bundle = commands.add_parser("bundle", help="a self-contained server folder to ship with a game (PyInstaller)")
    bundle.add_argument("--out", required=True, type=Path, help="the folder to create (must not exist or be empty)")
    bundle.add_argument("--no-check", action="store_true", help="skip starting the bundle once after building")
    bundle.add_argument("--no-strip", action="store_true",
                        help="keep the debug symbols of the shared libraries (Linux strips them: about 30 MB)")
    bundle.set_defaults(handler=run_bundle)


def run_bundle(args: argparse.Namespace) -> int:
    size_mb, start_s = build_bundle(args.out, check=not args.no_check, strip=not args.no_strip)
    start = f"; ready (first line) in {start_s:.2f} s" if start_s is not None else ""
    print(f"npc-engine bundle: {args.out / EXECUTABLE}: {size_mb:.1f} MB{start}")
    return 0


def build_bundle(out: Path, *, check: bool = True, strip: bool = True) -> tuple[float, float | None]:
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
        if strip:
            strip_binaries(built)
        write_manifest(built)
        # Kept inside a Godot project (res://npc-engine), the editor would scan every library.
        (built / ".gdignore").write_text("", encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        shutil.move(str(built), str(out))
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6
    return size_mb, (cold_start_s(out) if check else None)


def strip_binaries(folder: Path) -> int:
    """Drop the debug symbols of the bundle's shared libraries (Linux, binutils' `strip`); returns
    how many were stripped. Libraries that auditwheel vendored (`*.libs/` folders: numpy's
    OpenBLAS among them) are left alone: patchelf rewrote them and strip breaks them, as it does
    PyInstaller's own --strip. The executable carries the frozen archive after its ELF sections
    and is left alone too. Elsewhere (macOS code signatures, Windows) nothing is stripped."""
    tool = shutil.which("strip")
    if not sys.platform.startswith("linux") or tool is None:
        return 0
    num_stripped = 0
    for library in sorted(folder.rglob("*.so*")):
        if not library.is_file() or library.is_symlink() or any(p.endswith(".libs") for p in library.parts):
            continue
        # strip writes a temporary and renames it: a library it cannot handle stays as it was.
        if subprocess.run([tool, "--strip-unneeded", str(library)], capture_output=True).returncode == 0:
            num_stripped += 1
    return num_stripped


def write_manifest(folder: Path) -> None:
    from . import __version__
    from .protocol.version import PROTOCOL_VERSION

    manifest = {"format": MANIFEST_FORMAT, "executable": EXECUTABLE, "os": _os_name(), "machine": platform.machine(),
                "npc_engine_version": __version__, "protocol_version": PROTOCOL_VERSION, "backend": "onnx"}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _os_name() -> str:
    """The names a game engine's build targets use: windows, macos, linux."""
    if sys.platform == "win32":
        return "windows"
    return "macos" if sys.platform == "darwin" else "linux"


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
