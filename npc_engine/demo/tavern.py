"""`npc-engine demo`: a terminal tavern. Three characters, a live "thinking" draft while the
model denoises, the line with its emotion and action, and the state it changed. It talks to a
real `npc-engine serve` subprocess over the wire protocol, as a game would.

Commands (also usable in a `--script` file, one per line; `#` starts a comment):
    /talk NAME    speak to another character          /who       list the characters
    /wait         stay silent: two of them talk        /memory    what the current one remembers
    /save SLOT /load SLOT /slots                        /help      this list      /quit
Anything else is said to the current character. Walking in, the one you face greets you (a game
event, not a line of yours).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from ..client import Client
from ..errors import ClientTimeoutError, ServerError

__all__ = ["CHARACTERS", "Scene", "TAVERN", "Tavern", "world_scene"]

PLAYER_ID = "player"
# The authored-line template: every line is one of the corpus's own, with the right names.
TEMPLATE = "shopkeeper_authored"
FREE_TEXT_TEMPLATE = "shopkeeper_reply"  # the model writes the line itself (`--template shopkeeper_reply`)
CHARACTERS: dict[str, dict] = {
    "brom": {"id": "brom", "name": "Brom", "mood": "neutral",
             "persona": "The blacksmith of Thornvale: gruff, proud of his work, wary of strangers, fair in trade.",
             "speaking_style": "short sentences, smithing words",
             "knowledge": ["The north bridge is out since the storm.", "Steel costs double this season."]},
    "mira": {"id": "mira", "name": "Mira", "mood": "happy",
             "persona": "The herbalist by the mill: warm, curious, knows every plant and every rumour in the valley.",
             "speaking_style": "gentle, asks questions back",
             "knowledge": ["Wolfsbane grows past the old mill.", "The miller's son has been ill for a week."]},
    "tomas": {"id": "tomas", "name": "Tomas", "mood": "suspicious",
              "persona": "The innkeeper of the Crooked Flagon: sly, counts every coin, trades in secrets.",
              "speaking_style": "smooth, a little mocking",
              "knowledge": ["A stranger in a grey cloak took the attic room.", "The guard captain drinks on credit."]},
}


@dataclass(frozen=True)
class Scene:
    """Where the demo plays: its characters, the place, the walk-in event and the templates."""

    place: str
    characters: dict[str, dict]
    arrival: str                 # the game event when the player walks in
    template: str                # authored lines
    free_text_template: str      # the model writes the line itself
    town: str = "Thornvale"      # where the player is a stranger


TAVERN = Scene("the Crooked Flagon", CHARACTERS, "A traveller walks into the Crooked Flagon and comes to you.",
               TEMPLATE, FREE_TEXT_TEMPLATE)


def world_scene(world: Any) -> Scene:
    """A scene from a world file (training/world.py): one character of each of its first three
    archetypes, described as the model saw characters in training, in the world's first town;
    the walk-in is the first event the player causes (a plain arrival if it has none)."""
    town = world.towns[0]
    characters = {}
    for index, archetype in enumerate(world.archetypes[:3]):
        name = archetype.names[0]
        key = re.sub(r"[^a-z0-9_]", "_", name.lower())
        persona = archetype.persona.replace("{town}", town)
        characters[key] = {"id": key, "name": name, "mood": world.moods[(index * 3) % len(world.moods)],
                           "persona": persona[0].upper() + persona[1:] + ".",
                           "speaking_style": archetype.style[0].upper() + archetype.style[1:] + ".",
                           "knowledge": [f"You live in {town}.", f"You sell {', '.join(archetype.goods)}."]}
    caused = next((event for event in world.events.values() if event.causer), None)
    fillers = {"player": "Traveller", "town": town, "place": world.places[0], "item": world.items[0]}
    arrival = f"Traveller arrives in {town}."
    if caused is not None:
        arrival = caused.texts[0]
        for key, value in fillers.items():
            arrival = arrival.replace("{" + key + "}", value)
    free = world.template.name
    return Scene(town, characters, arrival, free.removesuffix("_reply") + "_authored", free, town)


def clean_input(text: str) -> str:
    """Drops control characters (a pasted escape sequence must not reach the terminal or the model)."""
    return "".join(ch for ch in text if ch in "\t " or unicodedata.category(ch)[0] != "C").strip()


@dataclass
class _Options:
    is_tty: bool
    seed: int | None


class Tavern:
    """The demo's logic, separate from its input loop so a script and a person drive it alike."""

    def __init__(self, client: Client, out: TextIO | None = None, *, is_tty: bool | None = None,
                 seed: int | None = None, template: str | None = None, scene: Scene = TAVERN) -> None:
        self.client = client
        self.scene = scene
        self.characters = scene.characters
        self.template = template or scene.template
        self.out = out if out is not None else sys.stdout  # read now: a redirect after import is honoured
        self.current = next(iter(scene.characters))
        self.options = _Options(is_tty=self.out.isatty() if is_tty is None else is_tty, seed=seed)
        self.num_errors = 0

    def setup(self) -> None:
        hello = self.client.hello(client_name="npc-engine-demo")
        self.client.upsert_speaker(PLAYER_ID, "Traveller", f"A stranger passing through {self.scene.town}.")
        known = set(self.client.list_characters())
        for character in self.characters.values():
            # Only the definition on a first visit; later visits keep mood, trust and memories.
            self.client.upsert_character(character if character["id"] not in known else
                                         {k: character[k] for k in ("id", "name", "persona")})
        self.print(f"Connected: {hello.server} {hello.server_version}, model with "
                   f"{hello.model.num_parameters:,} parameters on {hello.model.device}.")
        self.print(f"You step into {self.scene.place}. " + ", ".join(
            f"{c['name']} ({c['id']})" for c in self.characters.values()) + " are here. Type /help for commands.")
        self.print(f"You are talking to {self._name(self.current)}.")
        self.react(self.current, self.scene.arrival, PLAYER_ID)

    def play(self, lines: list[str]) -> bool:
        """Plays a script, echoing each line; True when every say got its reply."""
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                self.print(f"> {line}")
            if not self.handle(line):
                break
        return self.num_errors == 0

    def interact(self, read: Callable[[str], str] = input) -> None:
        """Reads lines from a person until /quit, end of input or Ctrl-C."""
        while True:
            try:
                line = read(f"you -> {self._name(self.current)}> ")
            except (EOFError, KeyboardInterrupt):
                self.print()
                return
            if not self.handle(line):
                return

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def handle(self, line: str) -> bool:
        """One line of input; False when the demo should end."""
        line = clean_input(line)
        if not line or line.startswith("#"):
            return True
        if not line.startswith("/"):
            self.say(line)
            return True
        command, _, argument = line[1:].partition(" ")
        argument = argument.strip()
        handlers: dict[str, Callable[[str], bool | None]] = {
            "talk": self._talk, "who": self._who, "wait": self._wait, "memory": self._memory, "save": self._save,
            "load": self._load, "slots": self._slots, "help": self._help, "quit": lambda _: False,
        }
        handler = handlers.get(command.lower())
        if handler is None:
            self.print(f"Unknown command /{command}. Type /help.")
            return True
        try:
            return handler(argument) is not False
        except ServerError as exc:
            self._report(exc)
            return True

    def react(self, character_id: str, event: str, causer_id: str | None = None) -> str | None:
        """The character's reply to a game event, shown like a line; returns what it said."""
        self.print(f"  [{event}]")
        try:
            result = self.client.react(character_id, event, causer_id=causer_id, template=self.template,
                                       seed=self.options.seed)
        except (ServerError, ClientTimeoutError) as exc:
            self._report(exc)
            return None
        return self._show(self._name(character_id), result, 0)

    def say(self, text: str, *, to: str | None = None, speaker_id: str = PLAYER_ID) -> str | None:
        """`speaker_id` (the player, or another character) says `text` to `to` (default: the one
        the player faces); returns the reply's line."""
        character_id = to or self.current
        name = self._name(character_id)
        try:
            stream = self.client.say_stream(character_id, speaker_id, text, template=self.template,
                                            seed=self.options.seed)
            num_drafts = 0
            for draft in stream:
                num_drafts += 1
                if self.options.is_tty:
                    self.out.write(f"\r\x1b[2K  {name} (thinking): {draft.fields.get('say', '')}")
                    self.out.flush()
            result = stream.result()
        except (ServerError, ClientTimeoutError) as exc:
            self._report(exc)
            return None
        if self.options.is_tty:
            self.out.write("\r\x1b[2K")
        return self._show(name, result, num_drafts)

    def _show(self, name: str, result, num_drafts: int) -> str:
        fields = result.fields or {}
        self.print(f'{name}: "{fields.get("say", "")}"')
        self.print(f"  emotion: {fields.get('emotion')}   action: {fields.get('action')}   "
                   f"({num_drafts} drafts, {result.num_steps} steps, {result.elapsed_ms:.0f} ms)")
        for change in result.changes:
            if change.old == change.new:
                continue
            delta = f" ({change.delta:+d})" if change.delta is not None else ""
            self.print(f"  {change.path}: {change.old} -> {change.new}{delta}")
        return str(fields.get("say", ""))

    def _wait(self, _: str) -> None:
        """The player stays silent: the one they face and the next one talk to each other."""
        keys = list(self.characters)
        other = keys[(keys.index(self.current) + 1) % len(keys)]
        opener = self.react(other, f"The traveller stays silent; {self._name(other)} turns to "
                                   f"{self._name(self.current)}.", self.current)  # addressed: a line names them
        if not opener:
            return
        reply = self.say(opener, to=self.current, speaker_id=other)
        if reply:
            self.say(reply, to=other, speaker_id=self.current)

    def _talk(self, argument: str) -> None:
        key = argument.lower()
        if key not in self.characters:
            self.print(f"Nobody here is called {argument!r}. Try: {', '.join(self.characters)}.")
            return
        self.current = key
        self.print(f"You turn to {self._name(key)}.")

    def _who(self, _: str) -> None:
        for key in self.characters:
            character = self.client.get_character(key)
            trust = character.relationships.get(PLAYER_ID)
            self.print(f"  {key:6} {character.name:7} mood {character.mood:10} trust "
                       f"{trust.trust if trust else 0:+d}{'   <- talking' if key == self.current else ''}")

    def _memory(self, _: str) -> None:
        character = self.client.get_character(self.current)
        self.print(f"{character.name} remembers {len(character.recent_turns)} recent lines"
                   f" and {len(character.memories)} memories:")
        for turn in character.recent_turns[-6:]:
            if turn.kind == "event":
                self.print(f"  [{turn.text}]")
                continue
            speaker = "you" if turn.speaker_id == PLAYER_ID else self.characters.get(turn.speaker_id, {}).get(
                "name", turn.speaker_id)
            self.print(f"  {speaker}: {turn.text}")
        for memory in character.memories[-5:]:
            self.print(f"  * {memory.text} (salience {memory.salience:.1f})")

    def _save(self, slot: str) -> None:
        if not slot:
            self.print("Usage: /save SLOT")
            return
        info = self.client.save_snapshot(slot)
        self.print(f"Saved {self.scene.place} to slot {info.name!r} ({info.num_bytes:,} bytes).")

    def _load(self, slot: str) -> None:
        if not slot:
            self.print("Usage: /load SLOT")
            return
        try:
            self.client.load_snapshot(slot)
        except ServerError as exc:
            if exc.code != "unknown_snapshot":
                raise
            names = [s.name for s in self.client.list_snapshots()]
            self.print(f"There is no save slot {slot!r}. Slots: {', '.join(names) or 'none yet (/save NAME)'}.")
            return
        self.print(f"Loaded slot {slot!r}: everyone is back as they were.")

    def _slots(self, _: str) -> None:
        snapshots = self.client.list_snapshots()
        self.print("Save slots: " + (", ".join(s.name for s in snapshots) or "none yet (/save NAME)"))

    def _help(self, _: str) -> None:
        self.print(__doc__.split("Commands", 1)[1].split("\n", 1)[1].rstrip())
        other = self.scene.free_text_template if self.template == self.scene.template else self.scene.template
        self.print(f"Replies use the template {self.template!r} (start with --template {other} for the other).")

    def _name(self, key: str) -> str:
        return self.characters[key]["name"]

    def _report(self, exc: Exception) -> None:
        self.num_errors += 1
        code = getattr(exc, "code", "timeout")
        self.print(f"  ({code}: {exc})")
