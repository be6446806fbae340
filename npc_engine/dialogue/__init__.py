"""The dialogue layer: the one say path, above both the engine and the characters.

    prepare (read state, build the prompt and tokenize it once, resolve the template once)
      -> `Engine.submit` -> the engine's frames -> `FillResult`
      -> apply the reply's effects and turns to state (when `FinishReason.applies_state`)
      -> `SayResult`

`serve` (`npc_engine.server`), the cluster replicas and the cluster gateway all go through it.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "Dialogue": ".service", "SayHandle": ".service", "SayResult": ".service",
    "LocalState": ".state", "StateAccess": ".state",
    "EngineSeam": ".seams", "SayService": ".seams", "SayTicket": ".seams",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
