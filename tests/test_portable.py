"""npc_engine runs on Windows too: every POSIX-only call, signal or path sits in a branch guarded
by the platform (`sys.platform`, `os.name`), or after an early return for Windows in the same
function. The scanner is shown to catch an unguarded call before it is trusted."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

POSIX_ATTRIBUTES = {
    ("os", "kill"), ("os", "fork"), ("os", "setsid"), ("os", "killpg"), ("os", "getpgid"), ("os", "getuid"),
    ("os", "geteuid"), ("os", "getppid"), ("os", "mkfifo"), ("os", "sysconf"), ("os", "uname"),
    ("os", "chown"), ("signal", "SIGKILL"), ("signal", "SIGHUP"), ("signal", "SIGUSR1"), ("signal", "SIGUSR2"),
    ("signal", "SIGCHLD"), ("signal", "SIGQUIT"), ("signal", "SIGPIPE"), ("signal", "alarm"), ("signal", "pause"),
    ("socket", "AF_UNIX"), ("socket", "SO_REUSEPORT"),
}
POSIX_MODULES = {"fcntl", "resource", "pwd", "grp", "termios", "pty", "tty"}
POSIX_KEYWORDS = {"preexec_fn", "start_new_session", "pass_fds"}
POSIX_PATH_PREFIXES = ("/proc/", "/dev/", "/sys/", "/etc/", "/tmp/", "/usr/")
# Guarded where the scanner cannot see it, with the reason.
ALLOWED = {
    "npc_engine/server/gate.py: socket.AF_UNIX": "the gate's inner endpoint is ipc:// only where os.name != 'nt' "
                                                 "(private_endpoint)",
}


def _is_platform_test(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return "sys.platform" in text or "os.name" in text


def _findings(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename)
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent

    def is_guarded(node: ast.AST) -> bool:
        current = node
        while current in parents:
            parent = parents[current]
            if isinstance(parent, (ast.If, ast.IfExp)) and _is_platform_test(parent.test):
                return True
            if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
                # An earlier `if <platform>: ... return` in the same function (the Windows branch).
                return any(isinstance(s, ast.If) and _is_platform_test(s.test) and s.lineno < node.lineno
                           and any(isinstance(n, ast.Return) for n in ast.walk(s)) for s in parent.body)
            current = parent
        return False

    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and (node.value.id, node.attr) in POSIX_ATTRIBUTES:
            what = f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            bad = [n for n in names if n.split(".")[0] in POSIX_MODULES]
            what = f"import {bad[0]}" if bad else None
        elif isinstance(node, ast.keyword) and node.arg in POSIX_KEYWORDS:
            what = f"{node.arg}="
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith(POSIX_PATH_PREFIXES):
            what = f"path {node.value!r}"
        if what is not None and not is_guarded(node):
            found.append(f"{filename}:{node.lineno}: {what}")
    return found


def test_the_scanner_catches_unguarded_posix_calls_and_accepts_guarded_ones():
    unguarded = "import os, signal\ndef stop(pid):\n    os.kill(pid, signal.SIGKILL)\n"
    assert _findings(unguarded, "x.py") == ["x.py:3: os.kill", "x.py:3: signal.SIGKILL"]
    assert _findings("import fcntl\n", "x.py") == ["x.py:1: import fcntl"]
    assert _findings("import subprocess\nsubprocess.Popen(['a'], start_new_session=True)\n", "x.py") \
        == ["x.py:2: start_new_session="]
    assert _findings("from pathlib import Path\nPath(f'/proc/{1}/stat')\n", "x.py") == ["x.py:2: path '/proc/'"]
    guarded = ("import os, sys, signal\n"
               "def alive(pid):\n    if sys.platform == 'win32':\n        return True\n    os.kill(pid, 0)\n"
               "def stop(pid):\n    if os.name != 'nt':\n        os.kill(pid, signal.SIGKILL)\n")
    assert _findings(guarded, "x.py") == []


def test_npc_engine_has_no_unguarded_posix_only_calls():
    found = []
    for path in sorted((ROOT / "npc_engine").rglob("*.py")):
        found += _findings(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert [f for f in found if f"{f.split(':')[0]}: {f.split(': ', 1)[1]}" not in ALLOWED] == []
