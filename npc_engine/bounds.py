"""Counts and ranges a client controls beyond one message's shape, in one place (a leaf: the
wire models, the engine and the store all read them). schemas/PROTOCOL.md "Security" lists each
with its error."""

from __future__ import annotations

__all__ = ["MIN_PRIORITY", "MAX_PRIORITY", "MAX_WORLD_FACTS", "MAX_TEMPLATES", "MAX_TEMPLATE_BLOCKS"]

# A say's priority. The scheduler ages a request left out of a step by 0.25 per step, so within
# this range the lowest priority waits at most (MAX - MIN) / 0.25 = 800 steps behind a stream of
# the highest: never starved.
MIN_PRIORITY = -100.0
MAX_PRIORITY = 100.0

MAX_WORLD_FACTS = 1000   # every say reads all of them under the store's lock
MAX_TEMPLATES = 256      # registered at once, per server (or per cluster replica)
# Canvases one template may span (a longer one is refused at registration): each block is a full
# denoising run plus an encode of the finished block, and its masks are canvas x vocabulary.
MAX_TEMPLATE_BLOCKS = 4
