"""The most probable token sequence a token automaton accepts, under per-position distributions.

On a diffusion canvas every position is decided at once, so a left-to-right grammar mask does not
apply. Instead (as DINGO, "Constrained Inference for Diffusion LLMs", 2025, does for regular
languages) a dynamic program over positions x automaton states finds, for a slot of L positions,
the sequence t_1..t_k (k <= L) that the automaton accepts and that maximizes
sum_p log p_p(t_p) + sum_{p>k} log p_p(pad): the accepted text, then padding to the slot's end,
padding allowed only after an accepting state. Every candidate takes exactly one token at each of
the L positions, so the logits give the same answer as the log-probabilities (each position's
normalizer is a constant of the sum): no softmax is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

__all__ = ["TokenAutomaton", "best_accepted"]


@dataclass(frozen=True, eq=False)
class TokenAutomaton:
    """A deterministic automaton over token ids: state 0 starts; edge i goes from `edge_src[i]`
    to `edge_dst[i]` on token `edge_token[i]`; `is_final[s]` says whether s accepts. Edges are
    kept sorted by destination (the dynamic program reduces over each state's incoming edges)."""

    num_states: int
    edge_src: np.ndarray     # int64 (E,)
    edge_token: np.ndarray   # int64 (E,)
    edge_dst: np.ndarray     # int64 (E,), non-decreasing
    is_final: np.ndarray     # bool (S,)

    @classmethod
    def from_edges(cls, num_states: int, edges: np.ndarray, is_final: np.ndarray) -> "TokenAutomaton":
        """From (E, 3) rows of (source, token, destination), in any order."""
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 3)
        edges = edges[np.argsort(edges[:, 2], kind="stable")]
        return cls(num_states, edges[:, 0].copy(), edges[:, 1].copy(), edges[:, 2].copy(),
                   np.asarray(is_final, dtype=np.bool_))

    @cached_property
    def layout(self) -> "_Layout":
        """The edges laid out for the dynamic program: states grouped by width (in-degree rounded
        up to a power of two); within a group, column j holds every state's j-th incoming edge
        (padding: an edge from a dead state), so a position's per-state maxima are a few
        elementwise maxima of contiguous halves."""
        first = np.searchsorted(self.edge_dst, np.arange(self.num_states + 1))
        degree = np.diff(first)
        width = np.where(degree > 0, 2 ** np.ceil(np.log2(np.maximum(degree, 1))).astype(np.int64), 0)
        order, groups = [], []
        slot_base, slot_stride = np.zeros(self.num_states, np.int64), np.ones(self.num_states, np.int64)
        offset = 0
        for size in np.unique(width[width > 0]):
            states = np.flatnonzero(width == size)
            columns = np.arange(size)[:, None]
            block = np.where(columns < degree[states][None, :], first[states][None, :] + columns, self.num_edges)
            order.append(block.reshape(-1))  # column-major: (width, num_states) flattened
            slot_base[states] = offset + np.arange(states.shape[0])
            slot_stride[states] = states.shape[0]
            groups.append((states, offset, int(states.shape[0]), int(size)))
            offset += block.size
        edge_of = np.concatenate(order) if order else np.zeros(0, np.int64)   # slot -> edge (E = padding)
        src = np.append(self.edge_src, self.num_states)[edge_of].astype(np.int32)  # int32: faster gathers
        token = np.append(self.edge_token, 0)[edge_of].astype(np.int32)
        return _Layout(edge_of, src, token, groups, slot_base, slot_stride, width)

    @property
    def num_edges(self) -> int:
        return int(self.edge_src.shape[0])

    @cached_property
    def min_tokens_to_accept(self) -> int | None:
        """Fewest tokens from the start to an accepting state (None: it accepts nothing); found
        once per automaton (a say's check reads it from the cached automaton)."""
        distance = np.full(self.num_states, -1, dtype=np.int64)
        distance[0], frontier, steps = 0, np.array([0]), 0
        while frontier.size:
            if self.is_final[frontier].any():
                return steps
            steps += 1
            leaving = np.isin(self.edge_src, frontier)
            reached = np.unique(self.edge_dst[leaving])
            frontier = reached[distance[reached] < 0]
            distance[frontier] = steps
        return None

    @cached_property
    def _transitions(self) -> dict[tuple[int, int], int]:
        """(state, token) -> next state, for walking a sequence (built once per automaton)."""
        return dict(zip(zip(self.edge_src.tolist(), self.edge_token.tolist()), self.edge_dst.tolist()))

    @cached_property
    def by_token(self) -> tuple[np.ndarray, np.ndarray]:
        """Edge ids ordered by token, and each token's first row in that order (tokens past the
        largest on an edge have none)."""
        order = np.argsort(self.edge_token, kind="stable")
        tokens = self.edge_token[order]
        size = int(tokens[-1]) + 2 if tokens.size else 1
        return order, np.searchsorted(tokens, np.arange(size))

    def walk(self, tokens: Sequence[int]) -> int:
        """The state reached from the start on `tokens`, or -1 where an edge is missing."""
        transitions, state = self._transitions, 0
        for token in tokens:
            state = transitions.get((state, int(token)), -1)
            if state < 0:
                return -1
        return state

    def accepts(self, tokens: Sequence[int]) -> bool:
        """Whether the automaton accepts exactly `tokens`."""
        state = self.walk(tokens)
        return state >= 0 and bool(self.is_final[state])


def best_accepted(scores: np.ndarray, automaton: TokenAutomaton, pad_token_id: int,
                  *, incumbents: Sequence[np.ndarray] = ()) -> np.ndarray:
    """(L,) token ids: the most probable sequence `automaton` accepts under `scores` ((L, V)
    logits or log-probabilities of one slot's positions), then padding to the slot's end. All
    padding when nothing is accepted within L tokens (refused at registration through
    `min_tokens_to_accept`).

    NumPy on the host, so every runner shares it. `incumbents` (e.g. the slot's line after the
    previous step) are accepted sequences that bound the search, exactly: no position of a
    sequence scoring above the best of them (or of the per-position argmax, when the automaton
    accepts it) can hold a token more than the bound's slack below that position's best, so only
    edges of the tokens within the slack are searched; when the argmax is accepted, it is the
    answer. Without a tight incumbent the search runs over every edge."""
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    length = scores.shape[0]
    pad = scores[:, pad_token_id].astype(np.float64)
    pad_suffix = np.concatenate([np.cumsum(pad[::-1])[::-1], [0.0]])
    argmax = scores.argmax(axis=1)
    best, best_score = None, -np.inf
    for candidate in (argmax, *incumbents):
        text = _until_pad(candidate, pad_token_id)
        if automaton.accepts(text):
            score = float(scores[np.arange(text.shape[0]), text].astype(np.float64).sum()) + pad_suffix[len(text)]
            if score > best_score:
                best, best_score = _padded(text, length, pad_token_id), score
    if best is not None:
        if np.array_equal(best, argmax):  # every position at its own best: nothing scores higher
            return best
        peaks = scores[np.arange(length), argmax]
        slack = float(peaks.astype(np.float64).sum()) - best_score + _SLACK_ROUNDING
        _, first = automaton.by_token
        is_kept = scores[:, :first.shape[0] - 1] >= (peaks - slack)[:, None]
        num_kept_edges = int((is_kept.astype(np.int64) @ np.diff(first)).sum())
        if num_kept_edges <= _PRUNED_SHARE * length * automaton.num_edges:
            return _pruned(scores, automaton, pad_token_id, pad_suffix, is_kept)
    return _full(scores, automaton, pad_token_id, pad_suffix)


# A sum of float32 scores is only so exact: the bound keeps this much more.
_SLACK_ROUNDING = 1e-3
# Past this share of the full search's edges, the laid-out full search is the faster.
_PRUNED_SHARE = 0.25


def _until_pad(ids: np.ndarray, pad_token_id: int) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    at = np.flatnonzero(ids == pad_token_id)
    return ids[: at[0]] if at.size else ids


def _padded(text: np.ndarray, length: int, pad_token_id: int) -> np.ndarray:
    out = np.full(length, pad_token_id, dtype=np.int64)
    out[: text.shape[0]] = text
    return out


def _best_end(ends: np.ndarray, finals: np.ndarray) -> tuple[int, int]:
    """(text length, final state) of the best-scoring end in `ends` ((L + 1, finals): text of p
    tokens ending in each final state, padded after); (0, -1) when no text is accepted at all,
    which leaves the slot all padding."""
    if not finals.size or not np.isfinite(ends).any():
        return 0, -1
    end, column = np.unravel_index(int(np.argmax(ends)), ends.shape)
    return int(end), int(finals[column])


def _pruned(scores: np.ndarray, automaton: TokenAutomaton, pad_token_id: int, pad_suffix: np.ndarray,
            is_kept: np.ndarray) -> np.ndarray:
    """The dynamic program over only the edges whose token `is_kept` ((L, V') bool) at each
    position: every kept (position, edge) pair found at once, then a scatter-maximum per position
    over its few hundred edges."""
    length = scores.shape[0]
    order, first = automaton.by_token
    positions, tokens = np.nonzero(is_kept)
    counts = first[tokens + 1] - first[tokens]
    rows = np.repeat(first[tokens] - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    edges = order[rows]
    weights = scores[np.repeat(positions, counts), automaton.edge_token[edges]]
    bounds = np.searchsorted(np.repeat(positions, counts), np.arange(length + 1))
    sources, destinations = automaton.edge_src[edges], automaton.edge_dst[edges]
    finals = np.flatnonzero(automaton.is_final)
    score = np.full(automaton.num_states, -np.inf, dtype=np.float32)
    score[0] = 0.0
    ends = np.full((length + 1, finals.shape[0]), -np.inf)
    candidates = np.empty(edges.shape[0], dtype=np.float32)
    for position in range(length):
        ends[position] = score[finals] + pad_suffix[position]
        at = slice(bounds[position], bounds[position + 1])
        np.add(score[sources[at]], weights[at], out=candidates[at])
        score = np.full(automaton.num_states, -np.inf, dtype=np.float32)
        np.maximum.at(score, destinations[at], candidates[at])
    ends[length] = score[finals]
    out = np.full(length, pad_token_id, dtype=np.int64)
    end, state = _best_end(ends, finals)
    for position in range(end - 1, -1, -1):
        at = slice(bounds[position], bounds[position + 1])
        into = np.flatnonzero(destinations[at] == state)
        edge = edges[at][into[int(np.argmax(candidates[at][into]))]]
        out[position] = automaton.edge_token[edge]
        state = int(automaton.edge_src[edge])
    return out


def _full(scores: np.ndarray, automaton: TokenAutomaton, pad_token_id: int, pad_suffix: np.ndarray) -> np.ndarray:
    """The dynamic program over every edge: each position is one gather over the laid-out edges
    (at most twice the edges) and a row maximum per width group."""
    length = scores.shape[0]
    layout = automaton.layout
    finals = np.flatnonzero(automaton.is_final)
    score = np.full(automaton.num_states + 1, -np.inf, dtype=np.float32)  # the last: the dead state
    score[0] = 0.0
    candidates = np.empty((length, layout.src.shape[0]), dtype=np.float32)
    ends = np.full((length + 1, finals.shape[0]), -np.inf)  # text of p tokens ending in a final state
    for position in range(length):
        ends[position] = score[finals] + pad_suffix[position]
        candidate = candidates[position]
        np.add(np.take(score, layout.src), np.take(scores[position], layout.token), out=candidate)
        score = np.full(automaton.num_states + 1, -np.inf, dtype=np.float32)
        for states, start, num_states, width in layout.groups:
            block = candidate[start:start + num_states * width].reshape(width, num_states)
            while width > 1:  # fold the halves: contiguous elementwise maxima
                width //= 2
                block = np.maximum(block[:width], block[width:])
            score[states] = block[0]
    ends[length] = score[finals]
    out = np.full(length, pad_token_id, dtype=np.int64)
    end, state = _best_end(ends, finals)
    for position in range(end - 1, -1, -1):
        base, stride = layout.slot_base[state], layout.slot_stride[state]
        column = int(np.argmax(candidates[position, base:base + layout.width[state] * stride:stride]))
        edge = layout.edge_of[base + column * stride]
        out[position] = automaton.edge_token[edge]
        state = int(automaton.edge_src[edge])
    return out


@dataclass(frozen=True, eq=False)
class _Layout:
    edge_of: np.ndarray      # (E',) the edge at each slot; E (one past the last) pads
    src: np.ndarray          # (E',) its source state (the dead state for padding)
    token: np.ndarray        # (E',) its token (0 for padding: any id, its source is dead)
    groups: list[tuple[np.ndarray, int, int, int]]  # (states, first slot, how many states, width)
    slot_base: np.ndarray    # (S,) the slot of a state's first incoming edge
    slot_stride: np.ndarray  # (S,) from one of its edges to the next (its group's size)
    width: np.ndarray        # (S,)
