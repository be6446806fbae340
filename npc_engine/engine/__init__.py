"""The engine layer: requests, scheduling and the public `Engine`."""

from .engine import Engine, FillResult

__all__ = ["Engine", "FillResult"]
