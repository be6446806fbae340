"""`npc-engine studio`: a local web page over the protocol (see docs/studio.md). Needs the
`[studio]` extra (Starlette, Uvicorn)."""

from .app import STATIC_DIR, create_app

__all__ = ["create_app", "STATIC_DIR"]
