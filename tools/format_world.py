"""Rewrite a world file in the layout the shipped worlds use: one key a line, short lists of
strings packed to about 110 columns (the content is unchanged; the result is checked).

    python tools/format_world.py demos/worlds/outpost.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

WIDTH = 110


def formatted(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        one = "{" + ", ".join(f"{json.dumps(k)}: {formatted(v, indent + 1)}" for k, v in value.items()) + "}"
        if len(one) + len(pad) < WIDTH - 10 and "\n" not in one:
            return one
        inner = [f"{pad}  {json.dumps(k)}: {formatted(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(inner) + "\n" + pad + "}"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            lines, line = [], ""
            for item in (json.dumps(v, ensure_ascii=False) for v in value):
                if line and len(pad) + 2 + len(line) + len(item) + 2 > WIDTH:
                    lines.append(line.rstrip(", "))
                    line = ""
                line += item + ", "
            lines.append(line.rstrip(", "))
            if len(lines) == 1 and len(pad) + len(lines[0]) < WIDTH - 10:
                return "[" + lines[0] + "]"
            return "[\n" + ",\n".join(pad + "  " + part for part in lines) + "\n" + pad + "]"
        return "[\n" + ",\n".join(pad + "  " + formatted(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def main(path: str) -> None:
    file = Path(path)
    data = json.loads(file.read_text(encoding="utf-8"))
    text = formatted(data) + "\n"
    if json.loads(text) != data:
        raise SystemExit(f"{path}: formatting changed the content; left as it was")
    file.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        main(argument)
