"""Soak: N clients against `npc-engine serve` (or `--cluster`: a gateway with two replicas) for a
set time, with the server (or a replica) SIGKILLed and restarted at random intervals.

Each client owns two characters and mixes says, reactions to events, save/load of the
character's own slot, cancels at random points of a say, and disconnects in the middle of one.
Each character starts with a full history (prompts at their steady-state length). After every
operation it reads the character back and checks it against its ledger
(soak_ledger.py): no acknowledged write lost, no reply contradicting the stored history, nothing
half-applied or applied twice. After every kill the database file passes SQLite's
`integrity_check`. It also samples the server's memory (growth per 1,000 says after warm-up) and
the p99 say latency per minute. It prints a table and exits 1 on any violation.

    python bench/soak.py [--seconds 600] [--clients 32] [--kill-every 60 180] [--cluster] [--out FILE]
    python bench/soak.py --no-kills --warm-up-s 180 ...   # one server process: its memory after warm-up
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import hardware, write_json  # noqa: E402
from soak_ledger import Outcome, Seen, Violation, check_after, check_load, seen_of  # noqa: E402
from soak_targets import ClusterTarget, ServeTarget  # noqa: E402

import torch  # noqa: E402

from npc_engine import ClientTimeoutError, NpcEngineError, ServerError  # noqa: E402
from npc_engine.client import Client  # noqa: E402

TEMPLATE = "shopkeeper_reply"
OP_TIMEOUT_S = 60.0       # longer than a restart: requests queued while the server is down still run
SETTLE_S = 5.0            # an unanswered say may still land: its character must hold still this long
WARM_UP_S = 30.0
# Each character starts with a full history (the store keeps 64 turns): its prompts are as long as
# they will ever get from the first say, so latency and memory measure the server, not a history
# that grows for the first minutes.
HISTORY_TURNS = 64
OPS = ("say", "react", "save", "load", "cancel", "disconnect")
WEIGHTS = (55, 12, 8, 8, 12, 5)
# Refusals: the server answered and changed nothing.
UNCHANGED_CODES = {"busy", "rate_limited", "state_changed", "key_expired", "shutting_down"}


class Run:
    """What every client reports: counts, violations, say latencies."""

    def __init__(self, started_s: float) -> None:
        self.started_s = started_s
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self.latencies: list[tuple[float, float]] = []  # (seconds into the run, ms)
        self.stop = threading.Event()

    def count(self, key: str, violations: list[Violation] = ()) -> None:
        with self.lock:
            self.counts[key] += 1
            self.violations.extend(violations)

    def said(self, latency_ms: float) -> None:
        with self.lock:
            self.latencies.append((time.monotonic() - self.started_s, latency_ms))


class SoakClient:
    def __init__(self, index: int, endpoint: str, run: Run, seed: int) -> None:
        self.endpoint = endpoint
        self.run = run
        self.rng = random.Random(seed)
        self.client = Client(endpoint, timeout_s=OP_TIMEOUT_S)
        self.characters = [f"s{index}_{k}" for k in range(2)]
        self.seen: dict[str, Seen] = {}
        self.slots: dict[str, Seen | None] = {c: None for c in self.characters}
        self.num_ops = 0

    def setup(self) -> None:
        self._retry(lambda: self.client.upsert_speaker("player", "Aria"))
        for character_id in self.characters:
            history = [{"speaker_id": "player", "text": f"Old question {turn}?"} if turn % 2 == 0 else
                       {"speaker_id": character_id, "text": f"An old answer, number {turn}."}
                       for turn in range(HISTORY_TURNS)]
            self._retry(lambda: self.client.upsert_character(
                {"id": character_id, "name": character_id.title(), "persona": "A trader at the soak market.",
                 "recent_turns": history}))
            self.seen[character_id] = self.read(character_id)

    def loop(self) -> None:
        while not self.run.stop.is_set():
            character_id = self.rng.choice(self.characters)
            op = self.rng.choices(OPS, WEIGHTS)[0]
            self.num_ops += 1
            try:
                getattr(self, f"_{op}")(character_id)
            except NpcEngineError as exc:  # a failure the ledger did not expect is a finding, not a crash
                self.run.count(f"error:{type(exc).__name__}:{getattr(exc, 'code', '')}")
        self.client.close()

    def final_check(self) -> None:
        """Nothing changed since each character's last check (no write landed late)."""
        with Client(self.endpoint, timeout_s=OP_TIMEOUT_S) as client:
            for character_id in self.characters:
                after = seen_of(client.get_character(character_id))
                if after != self.seen[character_id]:
                    self.run.count("final", [Violation("contradicted", character_id, "changed after its last check")])

    # -- operations ------------------------------------------------------------------------

    def _say(self, character_id: str, *, is_event: bool = False) -> None:
        text = f"{character_id} event {self.num_ops}" if is_event else f"{character_id} question {self.num_ops}?"
        started = time.monotonic()
        try:
            if is_event:
                reply = self.client.react(character_id, text, template=TEMPLATE, causer_id="player")
            else:
                reply = self.client.say(character_id, "player", text, template=TEMPLATE)
        except (ServerError, ClientTimeoutError) as exc:
            self._settle(character_id, text, exc, is_event=is_event)
            return
        if not is_event:
            self.run.said((time.monotonic() - started) * 1000)
        self._check(character_id, text, Outcome.APPLIED if reply.fields is not None else Outcome.UNCHANGED,
                    reply.fields, is_event=is_event, key="react" if is_event else "say")

    def _react(self, character_id: str) -> None:
        self._say(character_id, is_event=True)

    def _cancel(self, character_id: str) -> None:
        text = f"{character_id} question {self.num_ops}?"
        try:
            stream = self.client.say_stream(character_id, "player", text, template=TEMPLATE)
            time.sleep(self.rng.uniform(0.0, 1.0))
            try:
                stream.cancel()
            except ServerError as exc:
                if exc.code != "unknown_request":  # it had already finished: fine
                    raise
            reply = stream.result()
        except (ServerError, ClientTimeoutError) as exc:
            self._settle(character_id, text, exc)
            return
        self._check(character_id, text, Outcome.APPLIED if reply.fields is not None else Outcome.UNCHANGED,
                    reply.fields, key=f"cancel:{reply.finish_reason}")

    def _disconnect(self, character_id: str) -> None:
        text = f"{character_id} question {self.num_ops}?"
        with Client(self.endpoint, timeout_s=OP_TIMEOUT_S) as other:
            other.say_stream(character_id, "player", text, template=TEMPLATE)
            time.sleep(self.rng.uniform(0.0, 1.0))
        self._settle(character_id, text, None)

    def _save(self, character_id: str) -> None:
        before = self.seen[character_id]
        try:
            self.client.save_snapshot(f"soak_{character_id}", character_id=character_id)
            self.slots[character_id] = before
            self.run.count("save")
        except (ServerError, ClientTimeoutError):
            self.slots[character_id] = None  # the slot may or may not have been written
            self.run.count("save:unknown")
        self.seen[character_id] = self._expect_unchanged(character_id, before, "save")

    def _load(self, character_id: str) -> None:
        slot = self.slots[character_id]
        if slot is None:
            return
        before = self.seen[character_id]
        try:
            self.client.load_snapshot(f"soak_{character_id}")
            outcome = Outcome.APPLIED
        except ServerError as exc:
            outcome = Outcome.UNCHANGED if exc.code in UNCHANGED_CODES else Outcome.UNKNOWN
        except ClientTimeoutError:
            outcome = Outcome.UNKNOWN
        after = self.read(character_id)
        self.run.count(f"load:{outcome}", check_load(character_id, before, after, slot, outcome))
        self.seen[character_id] = after

    # -- checking --------------------------------------------------------------------------

    def _check(self, character_id: str, text: str, outcome: str, fields: dict[str, Any] | None, *,
               is_event: bool = False, key: str) -> None:
        before = self.seen[character_id]
        after = self.read(character_id)
        self.run.count(f"{key}:{outcome}", check_after(character_id, before, after, outcome, text=text,
                                                        fields=fields, is_event=is_event))
        self.seen[character_id] = after

    def _settle(self, character_id: str, text: str, error: Exception | None, *, is_event: bool = False) -> None:
        """No answer (or a refusal): a refusal changed nothing; an unanswered say may still land,
        so the character is read until it holds still for SETTLE_S, then checked as all-or-nothing."""
        code = getattr(error, "code", None)
        if code in UNCHANGED_CODES:
            self._check(character_id, text, Outcome.UNCHANGED, None, is_event=is_event, key=f"refused:{code}")
            return
        if isinstance(error, ServerError):  # an error the soak did not provoke
            self.run.count(f"error:{code}")
        before = self.seen[character_id]
        after = self.read(character_id)
        while not self.run.stop.is_set():
            time.sleep(SETTLE_S)
            again = self.read(character_id)
            if again == after:
                break
            after = again
        self.run.count(f"unanswered:{'applied' if after != before else 'not_applied'}",
                       check_after(character_id, before, after, Outcome.UNKNOWN, text=text, is_event=is_event))
        self.seen[character_id] = after

    def _expect_unchanged(self, character_id: str, before: Seen, what: str) -> Seen:
        after = self.read(character_id)
        if after != before:
            self.run.count(what, [Violation("contradicted", character_id, f"{what} changed the character")])
        return after

    def read(self, character_id: str) -> Seen:
        return seen_of(self._retry(lambda: self.client.get_character(character_id)))

    def _retry(self, call: Any) -> Any:
        """Reads and idempotent writes, until the server answers (it may be restarting)."""
        while True:
            try:
                return call()
            except ClientTimeoutError:
                continue
            except ServerError as exc:
                if exc.code not in ("busy", "shutting_down"):
                    raise
                time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(60.0, 180.0), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--no-kills", action="store_true", help="never kill: one server process, for memory growth")
    parser.add_argument("--warm-up-s", type=float, default=WARM_UP_S,
                        help=f"seconds of a server process before its memory counts (default {WARM_UP_S:.0f})")
    parser.add_argument("--cluster", action="store_true", help="a gateway with two replicas; a replica is killed")
    parser.add_argument("--model", default=None, help="model folder (default: the built-in model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="npc-soak-") as scratch:
        target = (ClusterTarget if args.cluster else ServeTarget)(Path(scratch), model=args.model)
        target.start()
        run = Run(time.monotonic())
        clients = [SoakClient(i, target.endpoint, run, seed=args.seed * 1000 + i) for i in range(args.clients)]
        for client in clients:
            client.setup()
        threads = [threading.Thread(target=c.loop, name=f"soak-{i}", daemon=True) for i, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        deadline = run.started_s + args.seconds
        # Per server process: (seconds since it started, acknowledged says, resident bytes).
        memory: list[list[tuple[float, int, int]]] = [[]]
        process_started_s = time.monotonic()
        integrity: list[str] = []
        next_kill = time.monotonic() + rng.uniform(*args.kill_every)
        while time.monotonic() < deadline:
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            with run.lock:
                num_says = len(run.latencies)
            rss = target.memory_bytes()
            if rss:
                memory[-1].append((time.monotonic() - process_started_s, num_says, rss))
            if not args.no_kills and time.monotonic() >= next_kill and time.monotonic() < deadline - 5:
                integrity.append(target.kill_and_restart())
                memory.append([])  # a new server process: its own growth is measured
                process_started_s = time.monotonic()
                next_kill = time.monotonic() + rng.uniform(*args.kill_every)
        run.stop.set()
        for thread in threads:
            thread.join(timeout=OP_TIMEOUT_S + 30)
        for client in clients:
            client.final_check()
        integrity.append(target.integrity_check())
        target.stop()
    return report(args, run, memory, integrity, target.num_kills)


def memory_growth(memory: list[list[tuple[float, int, int]]],
                  warm_up_s: float) -> list[tuple[float, float, int, float]]:
    """Per server process that served says after its warm-up: (MiB after warm-up, MiB at the end,
    says in between, growth in %)."""
    rows = []
    for samples in memory:
        warm = [(n, b) for t, n, b in samples if t >= warm_up_s]
        if len(warm) >= 2 and warm[-1][0] > warm[0][0]:
            (n0, b0), (n1, b1) = warm[0], warm[-1]
            rows.append((b0 / 2**20, b1 / 2**20, n1 - n0, (b1 - b0) / b0 * 100))
    return rows


def report(args: argparse.Namespace, run: Run, memory: list[list[tuple[float, int, int]]], integrity: list[str],
           num_kills: int) -> int:
    minutes: dict[int, list[float]] = {}
    for at_s, ms in run.latencies:
        minutes.setdefault(int(at_s // 60), []).append(ms)
    growth = memory_growth(memory, args.warm_up_s)
    kinds = Counter(v.kind for v in run.violations)
    bad_files = [r for r in integrity if r != "ok"]
    print(f"\nsoak: {'cluster, 2 replicas' if args.cluster else 'serve'}, {args.clients} clients, "
          f"{args.seconds:.0f} s, {num_kills} kills ({hardware(torch.device('cpu'))})")
    print("| measure | value |\n|---|---:|")
    for key in sorted(run.counts):
        print(f"| ops {key} | {run.counts[key]:,} |")
    for kind in ("lost", "contradicted", "half_applied", "applied_twice"):
        print(f"| violations: {kind} | {kinds.get(kind, 0)} |")
    print(f"| integrity_check after each kill and at the end | {len(integrity) - len(bad_files)} ok, "
          f"{len(bad_files)} bad |")
    for start_mib, end_mib, num_says, percent in growth:
        print(f"| server memory after {args.warm_up_s:.0f} s warm-up, one process | {start_mib:.0f} -> {end_mib:.0f} MiB "
              f"over {num_says:,} says ({percent:+.1f}%) |")
    for minute, values in sorted(minutes.items()):
        print(f"| say p50 / p99 ms, minute {minute + 1} | {percentile(values, 0.5):.0f} / "
              f"{percentile(values, 0.99):.0f} ({len(values)} says) |")
    first, last = _window(run.latencies, first=True), _window(run.latencies, first=False)
    if first and last:
        print(f"| say p99 ms, minutes 2-6 vs the last 5 | {percentile(first, 0.99):.0f} vs "
              f"{percentile(last, 0.99):.0f} ({(percentile(last, 0.99) / percentile(first, 0.99) - 1) * 100:+.0f}%) |")
    for violation in run.violations[:20]:
        print(f"VIOLATION {violation.kind} {violation.character_id}: {violation.detail}")
    if args.out:
        write_json("soak", {"clients": args.clients, "seconds": args.seconds, "cluster": args.cluster,
                            "kills": num_kills, "counts": dict(run.counts), "violations": dict(kinds),
                            "integrity": integrity, "memory_growth": growth,
                            "latency_p99_ms_by_minute": {m + 1: percentile(v, 0.99) for m, v in minutes.items()},
                            "hardware": hardware(torch.device("cpu"))}, str(args.out))
    is_clean = not run.violations and not bad_files and not any(k.startswith("error:") for k in run.counts)
    return 0 if is_clean else 1


def _window(latencies: list[tuple[float, float]], *, first: bool) -> list[float]:
    """Say latencies of minutes 2-6 (after a minute's warm-up), or of the last 5 minutes; empty
    when the run is too short for both to be apart."""
    if not latencies or latencies[-1][0] < 11 * 60:
        return []
    end_s = latencies[-1][0]
    if first:
        return [ms for at_s, ms in latencies if 60 <= at_s < 360]
    return [ms for at_s, ms in latencies if at_s >= end_s - 300]


if __name__ == "__main__":
    sys.exit(main())
