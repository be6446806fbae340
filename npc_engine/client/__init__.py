"""Python client for the npc-engine server (blocking and asyncio)."""

from .client import AsyncClient, Client, Ops, SayStream

__all__ = ["AsyncClient", "Client", "Ops", "SayStream"]
