"""A pygame prototype: a tavern room with three NPCs. Click one (or press 1-3), type, press
Enter: its speech bubble shows the drafts settling into the line, and the meter under it shows
its trust in you. Needs a running `npc-engine serve` (or pass --start-server).

    python demos/python_prototype/main.py --start-server
    python demos/python_prototype/main.py --endpoint tcp://127.0.0.1:5555

Headless (tests, CI): SDL_VIDEODRIVER=dummy, with --script (lines said in turn), --frames,
--screenshot PNG and --frame-log CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pygame  # noqa: E402

from bridge import EngineBridge  # noqa: E402

WIDTH, HEIGHT = 960, 540
TEMPLATE = "shopkeeper_authored"  # lines from the corpus with the right names; "shopkeeper_reply" for free text
PLAYER = {"id": "player", "name": "Traveller"}
CHARACTERS = [
    {"id": "brom", "name": "Brom", "persona": "The blacksmith: gruff, proud, fair in trade."},
    {"id": "mira", "name": "Mira", "persona": "The herbalist: warm, curious, full of rumours."},
    {"id": "tomas", "name": "Tomas", "persona": "The innkeeper: sly, counts every coin."},
]
COLORS = [(170, 90, 50), (80, 150, 90), (120, 90, 160)]


@dataclass
class Npc:
    id: str
    name: str
    x: int
    color: tuple[int, int, int]
    bubble: str = ""
    is_draft: bool = False
    trust: int = 0
    mood: str = "neutral"
    lines: list[str] = field(default_factory=list)


class Scene:
    def __init__(self, bridge: EngineBridge) -> None:
        self.bridge = bridge
        self.npcs = [Npc(c["id"], c["name"], 180 + 300 * i, COLORS[i]) for i, c in enumerate(CHARACTERS)]
        self.selected = 0
        self.typed = ""
        self.status = "connecting to the engine..."
        self.is_ready = False
        self.num_drafts_shown = 0

    def update(self) -> None:
        for event in self.bridge.poll():
            npc = next((n for n in self.npcs if n.id == event.npc_id), None)
            if event.kind == "ready":
                self.is_ready = True
                self.status = f"model: {event.data.model.num_parameters:,} parameters on {event.data.model.device}"
            elif event.kind == "draft" and npc is not None:
                npc.bubble, npc.is_draft = str(event.data.get("say", "")), True
                self.num_drafts_shown += 1
            elif event.kind == "line" and npc is not None:
                fields = event.data.fields or {}
                npc.bubble, npc.is_draft = str(fields.get("say", "")), False
                npc.mood = str(fields.get("emotion", npc.mood))
                for change in event.data.changes:  # the server's clamped, stored value
                    if change.kind == "relationship" and change.path.endswith(".trust"):
                        npc.trust = int(change.new)
                npc.lines.append(npc.bubble)
                self.status = f"{npc.name}: {fields.get('emotion')}, {fields.get('action')}"
            elif event.kind == "error":
                self.status = f"error: {event.data}"

    def submit(self) -> bool:
        npc = self.npcs[self.selected]
        text = self.typed.strip()
        if not self.is_ready or not text or self.bridge.is_busy(npc.id):
            return False
        self.bridge.say(npc.id, text)
        npc.bubble, npc.is_draft = "...", True
        self.typed = ""
        return True

    def handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.MOUSEBUTTONDOWN:
            for index, npc in enumerate(self.npcs):
                if abs(event.pos[0] - npc.x) < 50 and 220 < event.pos[1] < 380:
                    self.selected = index
        elif event.type == pygame.KEYDOWN:
            if event.key == pygame.K_RETURN:
                self.submit()
            elif event.key == pygame.K_BACKSPACE:
                self.typed = self.typed[:-1]
            elif event.unicode and event.unicode in "123" and not self.typed:
                self.selected = int(event.unicode) - 1
            elif event.unicode and event.unicode.isprintable():
                self.typed += event.unicode

    def draw(self, screen: pygame.Surface, font: pygame.font.Font, small: pygame.font.Font) -> None:
        screen.fill((48, 36, 30))
        pygame.draw.rect(screen, (92, 64, 44), (0, 380, WIDTH, 160))  # floor
        pygame.draw.rect(screen, (120, 84, 56), (60, 60, 840, 40))  # the bar
        for index, npc in enumerate(self.npcs):
            body = pygame.Rect(npc.x - 35, 260, 70, 120)
            pygame.draw.rect(screen, npc.color, body, border_radius=12)
            if index == self.selected:
                pygame.draw.rect(screen, (250, 220, 120), body.inflate(8, 8), width=3, border_radius=14)
            screen.blit(small.render(f"{npc.name} ({npc.mood})", True, (235, 225, 210)), (npc.x - 45, 388))
            meter = pygame.Rect(npc.x - 50, 410, 100, 10)  # trust -100..100
            pygame.draw.rect(screen, (60, 50, 45), meter)
            fill = int(50 * max(-100, min(100, npc.trust)) / 100)
            pygame.draw.rect(screen, (90, 200, 110) if fill >= 0 else (210, 80, 70),
                             (npc.x + min(0, fill), 410, abs(fill), 10))
            if npc.bubble:
                text = small.render(npc.bubble[:40], True, (90, 90, 90) if npc.is_draft else (20, 20, 20))
                box = text.get_rect(center=(npc.x, 220)).inflate(16, 12)
                pygame.draw.rect(screen, (245, 240, 230), box, border_radius=8)
                screen.blit(text, text.get_rect(center=box.center))
        pygame.draw.rect(screen, (30, 24, 20), (20, 470, WIDTH - 40, 34))
        prompt = f"to {self.npcs[self.selected].name}: {self.typed}_"
        screen.blit(font.render(prompt, True, (240, 230, 200)), (28, 476))
        screen.blit(small.render(self.status, True, (200, 190, 170)), (20, 512))


def run(endpoint: str, *, script: list[str] | None = None, max_frames: int | None = None,
        screenshot: Path | None = None, frame_log: Path | None = None, fps: int = 60) -> dict:
    pygame.init()
    screen = pygame.display.set_mode((WIDTH, HEIGHT))
    pygame.display.set_caption("npc-engine: pygame prototype")
    font, small = pygame.font.Font(None, 28), pygame.font.Font(None, 22)
    bridge = EngineBridge(endpoint, CHARACTERS, PLAYER, TEMPLATE)
    scene = Scene(bridge)
    clock = pygame.time.Clock()
    pending_script = list(script or [])
    rows, frame = [], 0
    try:
        while max_frames is None or frame < max_frames:
            started = time.perf_counter()
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    return _summary(rows, scene)
                scene.handle(event)
            bridge_started = time.perf_counter()
            scene.update()
            if pending_script and scene.is_ready and not any(bridge.is_busy(n.id) for n in scene.npcs):
                scene.selected = len(script or []) - len(pending_script)
                scene.selected %= len(scene.npcs)
                scene.typed = pending_script.pop(0)
                scene.submit()
            bridge_ms = (time.perf_counter() - bridge_started) * 1000
            scene.draw(screen, font, small)
            pygame.display.flip()
            in_flight = sum(bridge.is_busy(n.id) for n in scene.npcs)
            rows.append({"frame": frame, "frame_ms": round((time.perf_counter() - started) * 1000, 3),
                         "bridge_ms": round(bridge_ms, 3), "in_flight": in_flight,
                         "bubble": scene.npcs[scene.selected].bubble})
            frame += 1
            if script is not None and not pending_script and not in_flight and \
                    all(n.lines for n in scene.npcs[:len(script)]):
                break  # the script is played and every reply is on screen
            clock.tick(fps)
        return _summary(rows, scene)
    finally:
        if screenshot is not None:
            pygame.image.save(screen, str(screenshot))
        if frame_log is not None:
            with open(frame_log, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["frame", "frame_ms", "bridge_ms", "in_flight", "bubble"])
                writer.writeheader()
                writer.writerows(rows)
        bridge.close()
        pygame.quit()


def _summary(rows: list[dict], scene: Scene) -> dict:
    return {"num_frames": len(rows), "num_frames_in_flight": sum(1 for r in rows if r["in_flight"]),
            "max_frame_ms": max((r["frame_ms"] for r in rows), default=0.0),
            "max_bridge_ms": max((r["bridge_ms"] for r in rows), default=0.0),
            "num_drafts_shown": scene.num_drafts_shown, "lines": {n.id: n.lines for n in scene.npcs},
            "trust": {n.id: n.trust for n in scene.npcs}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    parser.add_argument("--start-server", action="store_true", help="run npc-engine serve in a subprocess")
    parser.add_argument("--script", action="append", help="a line to say (repeatable; to each NPC in turn)")
    parser.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--frame-log", type=Path)
    args = parser.parse_args()
    server = None
    if args.start_server:
        from npc_engine.demo import ServerProcess

        from npc_engine.characters.store import default_database_path

        server = ServerProcess(db=os.environ.get("NPC_DEMO_DB") or default_database_path().with_name("demo.db")).start()
        args.endpoint = server.endpoint
    try:
        summary = run(args.endpoint, script=args.script, max_frames=args.frames, screenshot=args.screenshot,
                      frame_log=args.frame_log)
    finally:
        if server is not None:
            server.stop()
    print({k: v for k, v in summary.items() if k != "lines"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
