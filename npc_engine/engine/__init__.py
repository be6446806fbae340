"""The engine layer: requests, scheduler (pure policy), frame budget, runner, and `Engine`."""

from .calibrate import Calibration
from .config import EngineConfig
from .core import FrameReport
from .engine import Engine
from .handle import RequestHandle
from .request import FINISH_REASONS, Draft, FillResult, RequestStatus, finish_reason
from .stats import EngineStats

__all__ = [
    "Calibration",
    "Draft",
    "Engine",
    "EngineConfig",
    "EngineStats",
    "FINISH_REASONS",
    "FillResult",
    "FrameReport",
    "RequestHandle",
    "RequestStatus",
    "finish_reason",
]
