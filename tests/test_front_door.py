"""The engine's front door: a say through a real server looks its template up once, compiles and
serializes nothing (its plan is found by the key kept at registration), and walks the prompt's
ids once (where the prompt is made)."""

from __future__ import annotations

import pytest

from npc_engine.client import Client
from npc_engine.models.prompt import EncodedPrompt, PromptEncoder
from npc_engine.templates import Template, TemplateCompiler, TemplateRegistry

from .server_helpers import make_server, running


class Counts:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, int] = {}
        for owner, name in ((TemplateRegistry, "__getitem__"), (TemplateRegistry, "resolve"),
                            (TemplateCompiler, "_compile"), (Template, "cache_key"), (PromptEncoder, "check")):
            self._count(monkeypatch, owner, name)

    def _count(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        original = getattr(owner, name)
        key = f"{owner.__name__}.{name}"

        def counted(*args, **kwargs):
            is_lookup_by_name = name != "resolve" or isinstance(args[1], str)  # resolving a Template is no lookup
            if is_lookup_by_name:
                self.calls[key] = self.calls.get(key, 0) + 1
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, counted)

    def get(self, key: str) -> int:
        return self.calls.get(key, 0)


def test_a_say_looks_its_template_up_once_and_checks_its_prompt_once(backend, monkeypatch):
    server = make_server(backend)
    with running(server), Client(server.endpoint, timeout_s=30) as client:
        client.say("brom", "player", "Warm up.", template="shopkeeper_reply", seed=1)  # caches settle
        counts = Counts(monkeypatch)
        reply = client.say("brom", "player", "Any work?", template="shopkeeper_reply", seed=2)
        assert reply.finish_reason == "complete"
        lookups = counts.get("TemplateRegistry.__getitem__") + counts.get("TemplateRegistry.resolve")
        assert lookups == 1
        # The plan comes from the compiler's cache by the key kept at registration: nothing is
        # compiled, and the template is not serialized to find it.
        assert counts.get("TemplateCompiler._compile") == 0 and counts.get("Template.cache_key") == 0
        assert counts.get("PromptEncoder.check") == 1


def test_an_encoded_prompt_from_elsewhere_is_still_checked(engine):
    foreign = EncodedPrompt((), (engine.backend.vocab_size + 5,))  # not from this engine's encoder
    with pytest.raises(Exception, match="outside this model's vocabulary"):
        engine.submit({"name": "t", "slots": [{"name": "say", "kind": "text", "max_tokens": 4}]}, foreign)
    checked = engine.prompts.encode("Hello")
    assert engine.prompts.is_checked(checked) and not engine.prompts.is_checked(EncodedPrompt(*checked))
    assert tuple(checked) == tuple(EncodedPrompt(*checked))  # still the pair of id tuples it always was
