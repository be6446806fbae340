"""Game events in the procedural corpus: what happens to a character (not what the player says),
and the lines it answers with. Same shape as `corpus.INTENTS`, with `texts` (the event as the
game describes it) instead of utterances; `causer` says whether the player caused it (the prompt
then shows the character's relationship to them) or nobody did.

Lines use the corpus's fillers: {item} {place} {town} {player} {signature}; never `"`, `{`, `}`.
"""

from __future__ import annotations

__all__ = ["EVENTS", "EVENT_EMOTION_RULES", "EVENT_TOPICS"]

EVENTS: dict[str, dict] = {
    "player_enters": {"texts": ["{player} walks in.", "{player} steps through the door.", "{player} comes up to you.",
                                "{player} walks into the shop.", "{player} arrives and looks around."],
                      "causer": True, "actions": ["wave", "nod"], "trust": 0, "ends": False,
                      "lines": ["Welcome, {player}. {signature}.", "Come in, {player}, come in.",
                                "Ah, {player}. What can I do for you?", "Good to see you, {player}."]},
    "player_leaves": {"texts": ["{player} turns to leave.", "{player} walks out.", "{player} heads for the door."],
                      "causer": True, "actions": ["wave"], "trust": 0, "ends": True,
                      "lines": ["Off already, {player}? Safe roads.", "Come back soon, {player}.",
                                "Mind the road to {place}, {player}."]},
    "caught_stealing": {"texts": ["{player} was caught stealing {item}.", "{player} slips {item} into a pocket.",
                                  "{player} grabs {item} and runs."],
                        "causer": True, "actions": ["frown"], "trust": -1, "ends": False,
                        "lines": ["Thief! Put {item} back, {player}.", "I saw that, {player}. Drop {item}.",
                                  "Guards! {player} is stealing {item}."]},
    "gives_gift": {"texts": ["{player} hands you {item} as a gift.", "{player} leaves {item} on your table for you.",
                             "{player} offers you {item}, free."],
                   "causer": True, "actions": ["laugh", "nod"], "trust": 1, "ends": False,
                   "lines": ["For me? Thank you, {player}.", "{item}! You are too generous, {player}.",
                             "I will not forget this, {player}."]},
    "draws_weapon": {"texts": ["{player} draws a blade.", "{player} points a dagger at you.",
                               "{player} raises a fist at you."],
                     "causer": True, "actions": ["frown"], "trust": -1, "ends": False,
                     "lines": ["Put that away, {player}.", "Steel in my shop? Out, {player}.",
                               "Easy now, {player}. Nobody needs to bleed."]},
    "storm": {"texts": ["Thunder rolls over {town}.", "A storm breaks over {place}.", "Rain hammers the roof."],
              "causer": False, "actions": ["point_north", "shrug"], "trust": 0, "ends": False,
              "lines": ["That storm came from the north.", "Stay inside until it passes.",
                        "The road to {place} will flood tonight."]},
    "bell_rings": {"texts": ["The town bell rings.", "Bells ring out over {town}.", "The chapel bell tolls."],
                   "causer": False, "actions": ["point_north", "nod"], "trust": 0, "ends": False,
                   "lines": ["The bell means trouble at {place}.", "Someone rings for the watch.",
                             "That bell calls us to the square."]},
}

# The emotion an event's reply shows, from the mood, unless the event overrides it.
EVENT_EMOTION_RULES: dict[str, dict[str, str]] = {
    "caught_stealing": {"afraid": "afraid", "*": "angry"},
    "draws_weapon": {"angry": "angry", "*": "afraid"},
    "gives_gift": {"suspicious": "suspicious", "angry": "angry", "*": "happy"},
}

EVENT_TOPICS: dict[str, str] = {
    "player_enters": "greeting", "player_leaves": "farewell", "caught_stealing": "threat", "gives_gift": "praise",
    "draws_weapon": "threat", "storm": "small_talk", "bell_rings": "rumours",
}
