"""Pattern text slots, the foundations: a regular expression compiled to a token automaton over
the built-in model's vocabulary (outlines-core), and the dynamic program that finds the most
probable accepted sequence under per-position distributions (property tests, brute force)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npc_engine.diffusion.automaton import TokenAutomaton, best_accepted
from npc_engine.errors import TemplateError
from npc_engine.models import default_model_dir
from npc_engine.templates import TemplateCompiler
from npc_engine.templates import pattern as pattern_module
from npc_engine.templates.pattern import PatternCompiler
from npc_engine.templates.placeholders import fill_placeholders, placeholders_of
from npc_engine.training.line_pattern import world_line_pattern

TAVERN_LINE = r"(Hmph\.|Bah\.) (Safe road, {player}\.|Until next time, then\.)"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(default_model_dir())


@pytest.fixture(scope="module")
def patterns(tokenizer):
    allowed = _text_vocabulary(tokenizer)
    return PatternCompiler(tokenizer, allowed, eos_token_id=tokenizer.eos_token_id)


def _text_vocabulary(tokenizer) -> np.ndarray:
    compiler = TemplateCompiler(tokenizer, len(tokenizer), 64, tokenizer.pad_token_id, [tokenizer.eos_token_id])
    return compiler.text_vocabulary()


def _log_softmax(logits: torch.Tensor) -> np.ndarray:
    return logits.log_softmax(-1).numpy()


def _decode(tokenizer, ids: np.ndarray) -> str:
    return tokenizer.decode([int(i) for i in ids if int(i) != tokenizer.pad_token_id])


def test_a_filled_tavern_line_always_comes_out_whole(tokenizer, patterns):
    regex = fill_placeholders(TAVERN_LINE, {"player": "Aria"})
    automaton = patterns.compile(regex)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(24, len(tokenizer), generator=generator) * 4
        line = _decode(tokenizer, best_accepted(_log_softmax(logits), automaton, tokenizer.pad_token_id))
        assert re.fullmatch(regex, line), line
    assert patterns.compile(regex) is automaton  # cached


def test_the_decoder_follows_the_distributions(tokenizer, patterns):
    """Logits that favour one accepted line get exactly that line."""
    regex = fill_placeholders(TAVERN_LINE, {"player": "Aria"})
    automaton = patterns.compile(regex)
    wanted = tokenizer.encode("Bah. Until next time, then.", add_special_tokens=False)
    assert automaton.accepts(wanted)
    logits = torch.zeros(len(wanted) + 5, len(tokenizer))
    for position, token in enumerate(wanted):
        logits[position, token] = 8.0
    logits[len(wanted):, tokenizer.pad_token_id] = 8.0
    ids = best_accepted(_log_softmax(logits), automaton, tokenizer.pad_token_id)
    assert ids.tolist() == wanted + [tokenizer.pad_token_id] * 5


_WORDS = st.sampled_from(["Aye", "Bah", "the road", "coin", "safe", "Thornvale", "well"])


@st.composite
def _patterns(draw) -> tuple[str, dict[str, str]]:
    """A family: alternatives, optional groups, character classes, bounded repeats, placeholders."""
    parts, values = [], {}
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["words", "optional", "class", "repeat", "placeholder"]))
        if kind == "words":
            parts.append("(" + "|".join(re.escape(w) for w in draw(st.lists(_WORDS, min_size=1, max_size=3))) + ")")
        elif kind == "optional":
            parts.append(f"({re.escape(draw(_WORDS))} )?")
        elif kind == "class":
            parts.append("[a-c]")
        elif kind == "repeat":
            parts.append("(ho){1,3}")
        else:
            name = f"p{index}"
            parts.append("{" + name + "}")
            values[name] = draw(st.sampled_from(["Aria", "Brom", "Old Tom"]))
    return " ".join(parts) + r"\.", values


@settings(max_examples=60, deadline=None)
@given(spec=_patterns(), seed=st.integers(0, 2**31 - 1))
def test_random_patterns_and_logits_always_decode_to_a_full_match(tokenizer, patterns, spec, seed):
    pattern, values = spec
    regex = fill_placeholders(pattern, values)
    automaton = patterns.compile(regex)
    logits = torch.randn(40, len(tokenizer), generator=torch.Generator().manual_seed(seed)) * 3
    line = _decode(tokenizer, best_accepted(_log_softmax(logits), automaton, tokenizer.pad_token_id))
    assert re.fullmatch(regex, line), (regex, line)


@st.composite
def _small_automata(draw) -> TokenAutomaton:
    num_states = draw(st.integers(1, 4))
    edges = {}
    for _ in range(draw(st.integers(0, 8))):
        source, token = draw(st.integers(0, num_states - 1)), draw(st.integers(1, 4))  # token 0 is padding
        edges[(source, token)] = draw(st.integers(0, num_states - 1))
    is_final = np.array(draw(st.lists(st.booleans(), min_size=num_states, max_size=num_states)))
    array = np.array([(s, t, d) for (s, t), d in edges.items()], dtype=np.int64).reshape(-1, 3)
    return TokenAutomaton.from_edges(num_states, array, is_final)


def _brute_force(log_probs: np.ndarray, automaton: TokenAutomaton) -> float:
    length, vocab = log_probs.shape
    best = float("-inf")
    for num_tokens in range(length + 1):
        for tokens in itertools.product(range(1, vocab), repeat=num_tokens):
            if automaton.accepts(tokens):
                score = sum(float(log_probs[p, t]) for p, t in enumerate(tokens))
                best = max(best, score + float(log_probs[num_tokens:, 0].sum()))
    return best


def _accepted_sequences(automaton: TokenAutomaton, length: int) -> list[list[int]]:
    return [list(tokens) for num_tokens in range(length + 1)
            for tokens in itertools.product(range(1, 5), repeat=num_tokens) if automaton.accepts(tokens)]


@settings(max_examples=150, deadline=None)
@given(automata=st.lists(_small_automata(), min_size=1, max_size=3), seed=st.integers(0, 2**31 - 1),
       pick=st.integers(0, 10**6), as_logits=st.booleans())
def test_on_small_cases_the_choice_is_the_brute_force_optimum(automata, seed, pick, as_logits):
    """With or without an incumbent (any accepted sequence, padded), on logits or log-probs."""
    logits = torch.randn(len(automata), 3, 5, generator=torch.Generator().manual_seed(seed)) * 3
    log_probs = _log_softmax(logits)
    chosen = []
    for row, automaton in enumerate(automata):
        accepted = _accepted_sequences(automaton, 3)
        incumbents = [np.array(accepted[pick % len(accepted)] + [0] * (3 - len(accepted[pick % len(accepted)])))
                      ] if accepted and pick % 2 else []
        scores = logits[row].numpy() if as_logits else log_probs[row]
        chosen.append(best_accepted(scores, automaton, pad_token_id=0, incumbents=incumbents))
    for row, automaton in enumerate(automata):
        optimum = _brute_force(log_probs[row], automaton)
        tokens = [int(t) for t in chosen[row]]
        if optimum == float("-inf"):
            assert tokens == [0, 0, 0]  # nothing accepted within the slot: all padding
            continue
        num_text = next((i for i, t in enumerate(tokens) if t == 0), len(tokens))
        assert all(t == 0 for t in tokens[num_text:]) and automaton.accepts(tokens[:num_text])
        score = sum(float(log_probs[row, p, t]) for p, t in enumerate(tokens))
        assert score == pytest.approx(optimum, abs=1e-4)  # float32 sums


def test_a_close_incumbent_bounds_the_search_to_the_same_answer(tokenizer, patterns, monkeypatch):
    """A step's logits near the last step's: the last line bounds the search (no full search runs),
    and the answer is the full search's, score for score."""
    from npc_engine.diffusion import automaton as automaton_module

    regex = fill_placeholders(world_line_pattern(placeholders=("player", "name")), {"player": "Aria", "name": "Brom"})
    automaton = patterns.compile(regex)  # the tavern's every line: thousands of states
    generator = torch.Generator().manual_seed(3)
    full, calls = automaton_module._full, {"pruned": 0}
    pruned = automaton_module._pruned

    def counted(*args):
        calls["pruned"] += 1
        return pruned(*args)

    wanted = tokenizer.encode("Bah. Until next time, then.", add_special_tokens=False)
    assert automaton.accepts(wanted)
    wanted = torch.tensor(wanted + [tokenizer.pad_token_id] * (24 - len(wanted)))
    for _ in range(10):
        before = torch.randn(24, len(tokenizer), generator=generator)
        before[torch.arange(24), wanted] += 12.0  # a model sure of one line, far above the rest
        after = before + torch.randn(before.shape, generator=generator) * 0.5
        off = torch.randint(0, 24, (2,), generator=generator)  # ... with a doubt or two off the pattern
        after[off, torch.randint(0, len(tokenizer), (2,), generator=generator)] += 13.0
        after = after.numpy()
        incumbent = best_accepted(before.numpy(), automaton, tokenizer.pad_token_id)
        expected = full(after, automaton, tokenizer.pad_token_id, _pad_suffix(after, tokenizer.pad_token_id))
        monkeypatch.setattr(automaton_module, "_full", _refused)
        monkeypatch.setattr(automaton_module, "_pruned", counted)
        got = best_accepted(after, automaton, tokenizer.pad_token_id, incumbents=[incumbent])
        monkeypatch.undo()
        rows = np.arange(after.shape[0])
        assert after[rows, got].sum() == pytest.approx(after[rows, expected].sum(), abs=1e-3)
        assert re.fullmatch(regex, _decode(tokenizer, got))
    assert calls["pruned"] > 0  # some answers needed the bounded search (the rest: the argmax was accepted)


def _refused(*args):
    raise AssertionError("the full search ran")


def _pad_suffix(scores: np.ndarray, pad_token_id: int) -> np.ndarray:
    pad = scores[:, pad_token_id].astype(np.float64)
    return np.concatenate([np.cumsum(pad[::-1])[::-1], [0.0]])


def test_placeholders_are_filled_escaped_and_checked():
    assert placeholders_of(r"{a} and {b}, {a}. x{2,3}") == ["a", "b"]
    assert fill_placeholders(r"Hi, {player}\.", {"player": "Mr. T"}) == r"Hi, Mr\.\ T\."
    with pytest.raises(TemplateError, match=r"\{player\} has no value"):
        fill_placeholders(r"Hi, {player}\.", {}, template="t", slot="say")
    for bad in ('Aria"', "A{b}", "line\nbreak", "x" * 65, " "):
        with pytest.raises(TemplateError, match=r"\{player\}"):
            fill_placeholders(r"Hi, {player}\.", {"player": bad})


def test_bad_patterns_are_clear_errors(patterns, monkeypatch):
    with pytest.raises(TemplateError, match="not a regular expression"):
        patterns.compile("(unclosed", template="t", slot="say")
    with pytest.raises(TemplateError, match="matches no line"):
        patterns.compile('He said "hi"\\.')  # a quote: no text token may hold one
    monkeypatch.setattr(pattern_module, "MAX_PATTERN_EDGES", 10)
    with pytest.raises(TemplateError, match="token edges; at most"):
        patterns.compile("(Aye|Bah|Hmph) (the road|coin)\\.")


def test_min_tokens_to_accept(patterns, tokenizer):
    automaton = patterns.compile(r"Safe road, Aria\.")
    assert automaton.min_tokens_to_accept == len(tokenizer.encode("Safe road, Aria.", add_special_tokens=False))
