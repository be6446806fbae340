"""Server overhead: `npc-engine serve` in its own process, driven through the Python client.

1. ping round trip, p50/p99 (goal p50 <= 0.3 ms): the typed `Client` vs a bare DEALER socket on
   the same server (the transport's floor).
2. `character.get` ops/s with 16 concurrent clients (16 threads, a Client each), next to the
   same reads on an in-process `Store`.
3. `say` throughput: the same says (same model, seeds, characters) through the server vs
   in-process `Dialogue.submit` (goal: overhead <= 5%), without and with drafts (in-process
   with drafts renders them to a no-op callback, so both sides pay the rendering).
4. `say` throughput through the server with an observer attached (a thread polling `observe`
   every 300 ms, as the studio does), plain and in debug mode (every step's canvas recorded),
   against the same says unobserved (goal: within 5%).
5. What the security guards cost (issue 30): the same says through three in-process servers,
   one per variant, in turns: no ZAP and no gate, ZAP only, ZAP and the message gate (the
   default) (goal: ZAP within 5%).

    python bench/server.py [--pings 2000] [--says 48] [--device cpu] [--only guards]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MODEL_SIZES, ROOT, hardware, write_json  # noqa: E402

import msgpack  # noqa: E402
import torch  # noqa: E402
import zmq  # noqa: E402

from npc_engine import Dialogue, Engine, Store  # noqa: E402
from npc_engine.client import Client  # noqa: E402
from npc_engine.demo import ServerProcess  # noqa: E402
from npc_engine.models import build_tiny_model  # noqa: E402
from npc_engine.protocol import PROTOCOL_VERSION  # noqa: E402
from npc_engine.server import Server  # noqa: E402
from npc_engine.server.observe import OBSERVED_FOR_S  # noqa: E402

TEMPLATES = ROOT / "schemas" / "templates"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def populate(target, num_characters: int) -> None:
    """Same characters for both sides; `target` is a Client or a Store."""
    if isinstance(target, Store):
        target.upsert_speaker({"id": "player", "name": "Aria"})
    else:
        target.upsert_speaker("player", "Aria")
    for i in range(num_characters):
        target.upsert_character({"id": f"npc_{i}", "name": f"Villager {i}", "persona": f"Villager {i}, a farmer."})


def bench_ping(endpoint: str, num_pings: int) -> dict:
    with Client(endpoint) as client:
        for _ in range(200):
            client.ping()
        typed = []
        for _ in range(num_pings):
            start = time.perf_counter()
            client.ping()
            typed.append((time.perf_counter() - start) * 1000)
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(endpoint)
    bare = []
    for n in range(num_pings + 200):
        payload = msgpack.packb({"protocol_version": PROTOCOL_VERSION, "op": "ping", "request_id": str(n)})
        start = time.perf_counter()
        dealer.send(payload)
        dealer.recv()
        if n >= 200:
            bare.append((time.perf_counter() - start) * 1000)
    dealer.close(0)
    context.term()
    return {name: {"p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)}
            for name, v in (("client", typed), ("bare dealer", bare))}


def bench_get(endpoint: str, store: Store, num_clients: int, num_ops: int, num_characters: int) -> dict:
    clients = [Client(endpoint) for _ in range(num_clients)]
    barrier = threading.Barrier(num_clients + 1)

    def work(client: Client, offset: int) -> None:
        barrier.wait()
        for n in range(num_ops):
            client.get_character(f"npc_{(offset + n) % num_characters}")

    threads = [threading.Thread(target=work, args=(c, i)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    server_ops = num_clients * num_ops / (time.perf_counter() - start)
    for client in clients:
        client.close()
    start = time.perf_counter()
    for n in range(num_clients * num_ops):
        store.get_character(f"npc_{n % num_characters}")
    local_ops = num_clients * num_ops / (time.perf_counter() - start)
    return {"server_ops_per_s": server_ops, "in_process_ops_per_s": local_ops}


def says(num_says: int, num_characters: int) -> list[tuple[str, int]]:
    return [(f"npc_{n % num_characters}", n) for n in range(num_says)]


def bench_say_server(endpoint: str, jobs: list[tuple[str, int]], num_clients: int, stream: bool) -> float:
    chunks = [jobs[i::num_clients] for i in range(num_clients)]
    clients = [Client(endpoint, timeout_s=600) for _ in range(num_clients)]

    def work(client: Client, chunk: list[tuple[str, int]]) -> None:
        handles = [client.say_stream(c, "player", "Any news?", template="shopkeeper_reply", seed=s)
                   if stream else client.connection.submit("say", {
                       "character_id": c, "speaker_id": "player", "text": "Any news?",
                       "template": "shopkeeper_reply", "seed": s, "stream": False}) for c, s in chunk]
        for handle in handles:
            if stream:
                for _ in handle:
                    pass
                handle.result()
            else:
                assert handle[1].result(600)["ok"]

    threads = [threading.Thread(target=work, args=(c, chunk)) for c, chunk in zip(clients, chunks)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for client in clients:
        client.close()
    return len(jobs) / elapsed


class Observer:
    """Polls `observe` like the studio page, on its own connection, while says run."""

    def __init__(self, endpoint: str, *, debug: bool, interval_s: float = 0.3) -> None:
        self.endpoint, self.debug, self.interval_s = endpoint, debug, interval_s
        self.num_events = self.num_dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with Client(self.endpoint) as client:
            # A cursor past the newest event reads from now on: only this run's events are counted.
            since = client.observe(2**62, debug=self.debug).next_seq
            while not self._stop.wait(self.interval_s):
                result = client.observe(since, max_events=1000, debug=self.debug)
                self.num_events += len(result.events)
                self.num_dropped += result.num_dropped
                since = result.next_seq

    def __enter__(self) -> "Observer":
        self._thread.start()
        time.sleep(self.interval_s)  # its first poll has marked the server observed
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def bench_say_observed(endpoint: str, jobs: list[tuple[str, int]], *, debug: bool) -> tuple[float, int]:
    with Observer(endpoint, debug=debug) as observer:
        rate = bench_say_server(endpoint, jobs, 8, False)
    time.sleep(OBSERVED_FOR_S + 0.5)  # the server stops recording: the next unobserved row is unobserved
    return rate, observer.num_events


GUARD_VARIANTS = {"no ZAP, no gate": {"is_zap_enabled": False, "is_gated": False},
                  "ZAP only": {"is_gated": False},
                  "ZAP + gate (default)": {}}


def bench_guards(model_dir: Path, folder: Path, jobs: list[tuple[str, int]], num_characters: int,
                 rounds: int, device: str, num_pings: int = 2000) -> dict[str, dict]:
    """Per guard variant (a server each: same model, same characters), run in turns: says/s per
    round, and bare-socket ping round trips (the per-message cost of the gate's hop)."""
    servers = {}
    for index, (name, options) in enumerate(GUARD_VARIANTS.items()):
        engine = Engine.from_pretrained(model_dir, device=device)
        engine.register_template(TEMPLATES / "shopkeeper_reply.json")
        store = Store(folder / f"guards-{index}.db")
        populate(store, num_characters)
        servers[name] = Server(engine, store, bind="tcp://127.0.0.1:0", **options).start()
    results: dict[str, dict] = {name: {"says_per_s": [], "bare_ping": []} for name in servers}
    try:
        for server in servers.values():
            bench_say_server(server.endpoint, jobs[:8], 4, False)  # warm-up
        for round_index in range(rounds):
            names = list(servers)
            names = names[round_index % len(names):] + names[:round_index % len(names)]  # rotate who goes first
            for name in names:
                results[name]["says_per_s"].append(bench_say_server(servers[name].endpoint, jobs, 8, False))
            for name in names:
                results[name]["bare_ping"].append(bench_ping(servers[name].endpoint, num_pings // rounds)["bare dealer"])
    finally:
        for server in servers.values():
            server.stop()
            server.engine.close()
            server.store.close()
    return results


def print_guards(guards: dict[str, dict], rounds: int, machine: str) -> None:
    base = guards["no ZAP, no gate"]
    print(f"\nGuards on {machine}: an in-process server per variant (tiny model), {rounds} rounds in turns; "
          "says: 8 clients; ping: a bare DEALER socket\n| variant | says/s (median) | vs no ZAP, no gate: median "
          "of per-round ratios (each round) | ping p50 ms (median) | ping p99 ms (median) |\n|---|---:|---:|---:|---:|")
    for name, row in guards.items():
        ratios = [rate / b for rate, b in zip(row["says_per_s"], base["says_per_s"])]
        p50 = statistics.median(p["p50_ms"] for p in row["bare_ping"])
        p99 = statistics.median(p["p99_ms"] for p in row["bare_ping"])
        print(f"| {name} | {statistics.median(row['says_per_s']):.2f} | {(statistics.median(ratios) - 1) * 100:+.1f}% "
              f"({', '.join(f'{(r - 1) * 100:+.0f}%' for r in ratios)}) | {p50:.3f} | {p99:.3f} |")


def bench_say_local(dialogue: Dialogue, jobs: list[tuple[str, int]], stream: bool = False) -> float:
    start = time.perf_counter()
    handles = [dialogue.submit(c, "player", "Any news?", template="shopkeeper_reply", seed=s,
                               on_draft=(lambda draft: None) if stream else None) for c, s in jobs]
    for handle in handles:
        handle.result(600)
    return len(jobs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--gets", type=int, default=200, help="character.get per client")
    parser.add_argument("--says", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    parser.add_argument("--only", choices=["all", "guards"], default="all", help="guards: section 5 alone")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="npc-server-bench-"))
    model_dir = build_tiny_model(folder / "model", MODEL_SIZES["tiny"])
    if args.only == "guards":
        guards = bench_guards(model_dir, folder, says(args.says, 16), 16, args.rounds, args.device)
        print_guards(guards, args.rounds, hardware(torch.device(args.device)))
        write_json("server_guards", {"hardware": hardware(torch.device(args.device)), "guards": guards,
                                     "args": vars(args)}, args.out)
        return
    server = ServerProcess(model=model_dir, db=folder / "server.db", templates=[TEMPLATES],
                           extra_args=["--device", args.device]).start()
    endpoint = server.endpoint
    try:
        print(f"server on {endpoint}")
        num_characters = 16
        with Client(endpoint) as client:
            populate(client, num_characters)
        ping = bench_ping(endpoint, args.pings)
        store = Store(folder / "local.db")
        populate(store, num_characters)
        gets = bench_get(endpoint, store, args.clients, args.gets, num_characters)
        engine = Engine.from_pretrained(model_dir, device=args.device)
        engine.register_template(TEMPLATES / "shopkeeper_reply.json")
        dialogue = Dialogue(engine, store)
        engine.start()
        jobs = says(args.says, num_characters)
        bench_say_local(dialogue, jobs[:8])  # warm-up both sides
        bench_say_server(endpoint, jobs[:8], 4, False)
        rows = {"in-process": [], "server": [], "in-process, drafts": [], "server, drafts": [],
                "server, observed": [], "server, observed (debug)": []}
        observed_ratios: dict[str, list[float]] = {"server, observed": [], "server, observed (debug)": []}
        num_observed_events = []
        for _ in range(args.rounds):
            rows["in-process"].append(bench_say_local(dialogue, jobs))
            rows["server"].append(bench_say_server(endpoint, jobs, 8, False))
            rows["in-process, drafts"].append(bench_say_local(dialogue, jobs, stream=True))
            rows["server, drafts"].append(bench_say_server(endpoint, jobs, 8, True))
            # Each observed run right after an unobserved one of the same says: the characters'
            # histories grow as says run, so adjacent runs are the fair pair.
            for name, debug in (("server, observed", False), ("server, observed (debug)", True)):
                unobserved = bench_say_server(endpoint, jobs, 8, False)
                rate, num_events = bench_say_observed(endpoint, jobs, debug=debug)
                rows[name].append(rate)
                observed_ratios[name].append(rate / unobserved)
                num_observed_events.append(num_events)
        engine.close()
        dialogue.close()
        say_rate = {name: statistics.median(values) for name, values in rows.items()}
    finally:
        server.stop()
    guards = bench_guards(model_dir, folder, jobs, num_characters, args.rounds, args.device)
    machine = hardware(torch.device(args.device))
    print(f"\nServer on {machine}; loopback TCP; server in its own process")
    print("| ping round trip | p50 ms | p99 ms |\n|---|---:|---:|")
    for name, row in ping.items():
        print(f"| {name} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} |")
    print(f"\n| character.get, {args.clients} clients | ops/s |\n|---|---:|")
    print(f"| through the server | {gets['server_ops_per_s']:,.0f} |")
    print(f"| in-process Store (one thread) | {gets['in_process_ops_per_s']:,.0f} |")
    print(f"\n| say, {args.says} says over 16 characters, median of {args.rounds} | says/s | overhead vs in-process |")
    print("|---|---:|---:|")
    for name, rate in say_rate.items():
        if "observed" in name:
            continue
        base = say_rate["in-process, drafts" if "drafts" in name else "in-process"]
        print(f"| {name} | {rate:.2f} | {(1 - rate / base) * 100:+.1f}% |")
    print(f"\n| say through the server, {args.rounds} pairs | says/s (median) | slower than the unobserved run "
          "just before it (median of pairs) |\n|---|---:|---:|")
    for name, ratios in observed_ratios.items():
        print(f"| {name} | {say_rate[name]:.2f} | {(1 - statistics.median(ratios)) * 100:+.1f}% "
              f"({', '.join(f'{(1 - r) * 100:+.1f}%' for r in ratios)}) |")
    print(f"observer events per round: {', '.join(map(str, num_observed_events))}")
    print_guards(guards, args.rounds, machine)
    print("rounds (says/s): " + "; ".join(f"{n}: {', '.join(f'{v:.2f}' for v in vs)}" for n, vs in rows.items()))
    write_json("server", {"hardware": machine, "ping": ping, "get": gets, "say_per_s": say_rate,
                          "say_rounds": rows, "observed_ratios": observed_ratios, "guards": guards,
                          "args": vars(args)}, args.out)


if __name__ == "__main__":
    main()
