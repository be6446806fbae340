"""The terminal tavern (`npc-engine demo`) and the helper that runs `npc-engine serve` in a
subprocess, shared with the pygame prototype in demos/."""

from .server_process import ServerProcess, ServerStartError
from .tavern import CHARACTERS, TAVERN, Scene, Tavern, world_scene

__all__ = ["CHARACTERS", "Scene", "ServerProcess", "ServerStartError", "TAVERN", "Tavern", "world_scene"]
