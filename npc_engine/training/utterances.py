"""Player lines as players type them: a paraphrase grammar per intent, registers and typos.

Each intent has a list of *patterns*; a pattern is a phrase with alternatives (`[a|b|]`, an empty
alternative makes the group optional) and fillers (`{item}`, `{place}`, `{town}`, `{name}`). A
drawn line then passes through a register (plain, casual, formal) and, sometimes, typing noise
(lower case, a dropped question mark, a swapped or dropped letter). Whole patterns are held out
for evaluation, so "held-out paraphrases" are phrasings the model never saw.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from pathlib import Path

__all__ = ["FILLERS", "PATTERNS", "expand", "load_paraphrases", "pattern_split", "player_line"]

FILLERS = ("item", "place", "town", "name")
MAX_PATTERN_CHARS = 200

PATTERNS: dict[str, list[str]] = {
    "greet": [
        "[Hello|Hi|Hey|Howdy][ there|][, {name}|][.|!|]", "Good [morning|evening|day|afternoon][, {name}|][.|!]",
        "[Greetings|Well met|Hail][, friend|, {name}|][.|!]", "[Yo|Hey], what's up[?|]",
        "How are you [doing|keeping|today][, {name}|]?", "[Nice|Good] to see you[ again|][.|!]",
        "[Hi|Hello], [anyone home|is this your shop|I am new here][?|.]", "How goes it[, {name}|]?",
        "[Morning|Evening][, {name}|][.|!]", "Hey [friend|stranger|you][.|!|]",
    ],
    "farewell": [
        "[Goodbye|Bye|Farewell][, {name}|][.|!|]", "I [must|have to|should] [go|leave|be going][ now|][.|]",
        "See you [later|around|soon|tomorrow][.|!|]", "Take care[, {name}|][.|!]",
        "I will be on my way[.|]", "[Time|Time for me] to [go|head out|leave][.|]",
        "[Until next time|So long|Later][, {name}|][.|!|]", "[Thanks|Thank you], [bye|goodbye|see you][.|!|]",
        "I am [off|leaving][ now|][.|]",
    ],
    "ask_rumours": [
        "[Heard|Have you heard] any [rumours|rumors|news|gossip][ lately|][?|]", "What news [from|in] {town}[?|]",
        "Anything [strange|odd|interesting|new] [lately|around here|going on][?|]",
        "What are [people|folk|they] [saying|talking about][?|]", "Any [gossip|news|stories][?|]",
        "Tell me the [latest|news|gossip][ news|][.|]", "What is [going on|happening] in {town}[?|]",
        "[Know|Do you know] anything [interesting|about {town}][?|]", "Whats the word [around here|in town][?|]",
        "Any news [worth hearing|from the road][?|]",
    ],
    "buy": [
        "I [want|would like|need] to buy {item}[, please|][.|]", "Do you [sell|have|stock] {item}[?|]",
        "Can I [get|have|buy] {item}[, please|][?|]", "I need {item}[, please|][.|]", "Sell me {item}[.|!|]",
        "[Give|Get] me {item}[, please|][.|]", "I will take {item}[.|]", "One {item}[, please|][.|]",
        "[Got|Have you got] any {item}[?|]", "I am [looking|shopping] for {item}[.|]",
    ],
    "sell": [
        "[Want|Would you like] to buy {item}[?|]", "I have {item} to sell[.|]", "Will you [take|buy] {item}[?|]",
        "I found {item}[, interested|, want it][?|]", "[How much|What] will you [pay|give me] for {item}[?|]",
        "I [could|can] sell you {item}[.|]", "[Buying|Do you buy] {item}[?|]",
        "[Here|Look], {item} for sale[.|]", "Interested in {item}[?|]",
    ],
    "haggle": [
        "That [price|is] too [high|much|steep][.|!|]", "Can you [lower|drop|cut] the price[?|]",
        "[Give|Get] me a [discount|better price|deal][.|!|]", "I will pay [half|less|two silver][.|]",
        "Come on, [cheaper|lower][.|!|]", "[That is|What] a [robbery|steal|rip off][.|!]",
        "[How about|What about] [a discount|less|half][?|]", "Too [expensive|pricey|rich] for me[.|]",
        "[Surely|Maybe] you can do better[.|?|]",
    ],
    "threaten": [
        "Give me your [coin|gold|money] or else[.|!]", "I will [burn|wreck|smash] this place[ down|][.|!]",
        "Do what I say or you will regret it[.|!]", "Watch your back[, {name}|][.|!]",
        "Hand it over before I hurt you[.|!]", "[Pay up|Give it here] or [bleed|else|regret it][.|!]",
        "I [will|could] [hurt|end] you[, {name}|][.|!]", "One more word and you [are dead|will pay][.|!]",
        "[Nobody|No one] will [miss|find] you[.|!]",
    ],
    "flatter": [
        "You look [wonderful|great|lovely] today[.|!|]", "You are the best in {town}[.|!]",
        "Your work is [amazing|wonderful|the finest][.|!|]", "I have heard great things about you[.|!|]",
        "What a [fine|lovely|great] [place|shop] you keep[.|!]", "[Nobody|No one] [does it|works] better than you[.|!]",
        "You are [so|very|truly] [clever|kind|skilled][.|!|]", "[Best|Finest] [shop|service] in town[.|!|]",
        "I [love|admire] your [work|shop][.|!|]",
    ],
    "insult": [
        "You are a [fool|idiot|joke][.|!|]", "This place [stinks|smells|is a dump][.|!|]",
        "Your [goods|wares|stuff] [are|is] [rubbish|junk|trash][.|!|]", "You are useless[, {name}|][.|!|]",
        "What an ugly [face|shop][.|!|]", "[Nobody|No one] likes you[, {name}|][.|!]",
        "You [smell|look] [awful|terrible|like a pig][.|!|]", "[Worst|Dirtiest] [shop|place] in {town}[.|!|]",
        "[Shut up|Be quiet], [fool|old goat|you][.|!]",
    ],
    "ask_directions": [
        "How do I get to {place}[?|]", "Where is {place}[?|]", "Which way [to|is] {place}[?|]",
        "Can you point me to {place}[?|]", "I am looking for {place}[.|]", "[Is|How far is] {place} [near|far][?|]",
        "[Lost|I am lost], [where is|looking for] {place}[?|]", "Show me the way to {place}[, please|][.|?|]",
        "[Way|Road] to {place}[?|]", "Where can I find {place}[?|]",
    ],
    "ask_quest": [
        "Do you have any work[ for me|][?|]", "Need help with anything[?|]", "Any [tasks|jobs|work] for me[?|]",
        "I am looking for [a job|work|a task][.|]", "Is there a quest for me[?|]", "[Got|Have you got] a job[ for me|][?|]",
        "I need [coin|work|money], [any jobs|anything for me][?|]", "Can I [earn|make] some [coin|money] here[?|]",
        "[Anything|Something] I can do for [coin|you][?|]", "Hiring[ anyone|][?|]",
    ],
    "ask_about_character": [
        "Tell me about yourself[.|]", "Who are you[?|]", "What do you do [here|for a living][?|]",
        "How long have you lived in {town}[?|]", "[What is|Whats] your [name|story][?|]",
        "[Where|How] did you [grow up|start][?|]", "Are you from {town}[?|]", "What is your [trade|job|work][?|]",
        "[So|And] who [are you|might you be][?|]",
    ],
    "ask_price": [
        "How much [is|for] {item}[?|]", "What does {item} cost[?|]", "Price of {item}[?|]", "Is {item} expensive[?|]",
        "What would {item} set me back[?|]", "[What|How much] do you [want|ask] for {item}[?|]",
        "[Cost|Price] for {item}[?|]", "How [expensive|pricey] is {item}[?|]", "{item}, how much[?|]",
    ],
    "offer_help": [
        "Can I help you[?|]", "Let me help [with that|you][.|]", "Do you need a hand[?|]", "I can carry that for you[.|]",
        "[Need|Want] [help|a hand][?|]", "[Let|Allow] me [help|give you a hand][.|]",
        "I [could|can] help[ you|][ if you want|][.|]", "Anything I can do to help[?|]", "Here, let me [lift|take] that[.|]",
    ],
    "apologize": [
        "I am sorry[, {name}|][.|]", "Forgive me[, {name}|][.|]", "I did not mean [that|it][.|]",
        "My apologies[ for earlier|][.|]", "[Sorry|So sorry] about [that|earlier|before][.|]",
        "I [was wrong|spoke badly|was rude][, sorry|][.|]", "Please forgive me[.|]", "[Sorry|My bad][, {name}|][.|!|]",
        "I apologize[ for what I said|][.|]",
    ],
    "ask_weather": [
        "Will it rain [today|tonight|later][?|]", "How is the weather[?|]", "Cold today, is it not[?|]",
        "Is a storm coming[?|]", "[Nice|Strange|Bad] weather[, is it not|][?|]", "[Think|Do you think] it will [rain|snow][?|]",
        "[Looks|Feels] like rain[?|.|]", "What is the [sky|weather] [doing|like][?|]", "[Wind|Weather] [changing|turning][?|]",
    ],
}

_CASUAL = ["yo", "hey", "so", "oi", "ok so", "um", "listen"]
_FORMAL = ["Excuse me,", "Pardon me,", "Good day,", "If you please,", "Forgive the bother,"]
_GROUP = re.compile(r"\[([^\[\]]*)\]")


def expand(pattern: str, rng: random.Random, fillers: dict[str, str]) -> str:
    """One phrasing of `pattern`: each `[a|b]` group picks an alternative; fillers are substituted."""
    text = _GROUP.sub(lambda match: rng.choice(match.group(1).split("|")), pattern)
    for key, value in fillers.items():
        text = text.replace("{" + key + "}", value)
    text = re.sub(r"\s+", " ", text).strip()
    return text[0].upper() + text[1:] if text else text


def pattern_split(intent: str, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-out) pattern indices of `intent`: about one in five held out, at least one."""
    indices = list(range(len(PATTERNS[intent])))
    random.Random(zlib.crc32(f"{seed}-{intent}".encode())).shuffle(indices)
    num_heldout = max(1, len(indices) // 5)
    return sorted(indices[num_heldout:]), sorted(indices[:num_heldout])


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def load_paraphrases(path: str | Path) -> dict[str, list[str]]:
    """Extra player-line patterns (written by hand, or offline by a teacher model), one JSON object
    per line: `{"intent": "buy", "text": "Got any {item} for sale?"}`. The text may use the
    grammar's `[a|b]` groups and the fillers {item} {place} {town} {name}. Raises DataError naming
    the file and line for anything else: a missing file, bad JSON, an unknown intent or filler."""
    from .data import DataError  # the error lives with the other data errors

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the paraphrase file {path}: {exc}") from None
    patterns: dict[str, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or set(record) != {"intent", "text"}:
            raise DataError(f'{where}: expected an object with exactly "intent" and "text"')
        intent, text = record["intent"], record["text"]
        if intent not in PATTERNS:
            raise DataError(f"{where}: unknown intent {intent!r}; expected one of {sorted(PATTERNS)}")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_PATTERN_CHARS:
            raise DataError(f"{where}: text must be a non-empty string of at most {MAX_PATTERN_CHARS} characters")
        unknown = set(re.findall(r"\{([^{}]*)\}", text)) - set(FILLERS)
        if unknown or text.count("{") != text.count("}") or text.count("[") != text.count("]"):
            raise DataError(f"{where}: unknown filler or unbalanced brackets in {text!r} "
                            f"(fillers: {', '.join('{' + f + '}' for f in FILLERS)})")
        patterns.setdefault(intent, []).append(text)
    if not patterns:
        raise DataError(f"{path}: no paraphrase lines")
    return patterns


def player_line(pattern: str, rng: random.Random, fillers: dict[str, str]) -> str:
    """A player's line from one pattern, in a random register, sometimes mistyped. Fillers (items,
    places, names) are never mistyped: the reply may have to repeat them."""
    text = expand(pattern, rng, fillers)
    register = rng.random()
    if register < 0.2:
        text = f"{rng.choice(_CASUAL)} {text[0].lower() + text[1:]}"
    elif register < 0.35:
        text = f"{rng.choice(_FORMAL)} {text[0].lower() + text[1:]}"
    protected = {word for value in fillers.values() for word in value.split()}
    if rng.random() < 0.25:
        words = text.split(" ")
        index = rng.randrange(len(words))
        if words[index] not in protected:
            words[index] = _typo(words[index], rng)
        text = " ".join(words)
    if rng.random() < 0.2:
        text = text.lower() if not protected & set(text.split()) else text[0].lower() + text[1:]
    if rng.random() < 0.2:
        text = text.rstrip("?.!")
    return text or expand(pattern, rng, fillers)
