"""The engine layer: requests, scheduler (pure policy), frame budget, runner, and `Engine`."""

from .calibrate import Calibration
from .config import EngineConfig
from .core import FrameReport
from .engine import Engine
from .handle import RequestHandle
from ..models.prompt import EncodedPrompt
from .request import FINISH_REASONS, Draft, FillResult, FinishReason, RequestStatus, finish_reason
from .stats import EngineStats

__all__ = [
    "Calibration",
    "Draft",
    "EncodedPrompt",
    "Engine",
    "EngineConfig",
    "EngineStats",
    "FINISH_REASONS",
    "FillResult",
    "FinishReason",
    "FrameReport",
    "RequestHandle",
    "RequestStatus",
    "finish_reason",
]
