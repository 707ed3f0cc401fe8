"""Prefix-cache affinity on the real model (issue #14).

Two cars, each an agent (openai-local, one slot) in front of its own llama-cpp-python server with
SmolLM2-135M and a RAM prompt cache (as scripts/real-model.sh starts it), behind one gateway with
the default scorer. A 6-turn conversation (a ~200-token system prompt, ~60-token user messages,
24-token answers, temperature 0; hedging off, first-token timeout 120 s); for every turn k >= 2, the time to the first content token:

- holding: turn k through the gateway while both cars are idle in the gateway's view. It must
  land on the car that served turns 1..k-1 (checked from the agents' job logs).
- other: a fresh conversation whose turns 1..k-1 went to one car; that car is then made busy by a
  long answer sent through the gateway (it follows the prefix too), and turn k must land on the other
  car, which has never seen the conversation.

The two conditions carry the same background load: in "holding", a long answer runs directly on
the other car's server (not through the gateway) while turn k is measured. Medians over --reps.
Run with the venv's Python:  ~/.cache/fleetgate/venv/bin/python LoadTests/bench_affinity.py
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import ROOT, free_port, median, start, stop, wait_port  # noqa: E402

CACHE = os.environ.get("FLEETGATE_CACHE", os.path.expanduser("~/.cache/fleetgate"))
PYTHON = os.environ.get("FLEETGATE_PYTHON", os.path.join(CACHE, "venv", "bin", "python"))
MODEL_FILE = os.environ.get("FLEETGATE_MODEL", os.path.join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
MODEL = "smollm2-135m"
WORDS = ("harbour tide river glacier meadow orchard lantern compass harvest signal engine battery charger "
         "bridge tunnel valley summit forest island market station garden library canal beacon").split()


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


class Runtime:
    def __init__(self):
        self.port = free_port()
        self.proc = start([PYTHON, "-m", "llama_cpp.server", "--model", MODEL_FILE, "--model_alias", MODEL,
                           "--host", "127.0.0.1", "--port", str(self.port), "--n_threads", "1",
                           "--n_threads_batch", "1", "--n_ctx", "2048", "--cache", "true", "--cache_type", "ram",
                           "--cache_size", str(512 << 20), "--verbose", "false"])
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if MODEL in urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models", timeout=1).read().decode():
                    return
            except OSError:
                time.sleep(0.3)
        sys.exit("llama_cpp.server did not start")


class Fleet:
    def __init__(self, bin_dir):
        self.bin_dir = bin_dir
        # Hedging off and a long first-token timeout: a second attempt on the other car would hide
        # where the turn went, and on a loaded 2-core machine a 1-thread prefill can take > 15 s.
        self.env = dict(os.environ, FLEETGATE_FLEET_SECRET="bench-secret-0123456789abcdef",
                        FLEETGATE_DISPATCH_HEDGING="false", FLEETGATE_DISPATCH_FIRST_TOKEN_TIMEOUT_SECONDS="120")
        self.client, self.tunnel, self.admin = free_port(), free_port(), free_port()
        self.gateway = start([os.path.join(bin_dir, "fleetgate"), "serve", "--client-port", str(self.client),
                              "--tunnel-port", str(self.tunnel), "--admin-port", str(self.admin), "--threads", "1",
                              "--log-level", "info"], self.env)
        wait_port(self.client)
        self.runtimes = [Runtime(), Runtime()]
        self.agents, self.logs = [], []
        for i, runtime in enumerate(self.runtimes):
            vehicle = f"affinity-{i}"
            log = tempfile.NamedTemporaryFile(prefix="fleet-jobs-", suffix=".jsonl", delete=False).name
            self.logs.append(log)
            token = subprocess.run([os.path.join(bin_dir, "fleetgate"), "token", "issue", "--vehicle-id", vehicle,
                                    "--region", "eu-central"], env=self.env, capture_output=True, text=True,
                                   check=True).stdout.strip()
            self.agents.append(start(
                [os.path.join(bin_dir, "fleet-agent"), "run", "--gateway", f"127.0.0.1:{self.tunnel}",
                 "--vehicle-id", vehicle, "--region", "eu-central", "--engine", "openai-local", "--upstream",
                 f"http://127.0.0.1:{runtime.port}/v1", "--slots", "1", "--cache-sequences", "16",
                 "--cache-tokens", "2048", "--job-log", log, "--log-level", "warning"],
                dict(os.environ, FLEET_AGENT_TOKEN=token)))
        deadline = time.time() + 60
        while json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz")).get("cars") != 2:
            if time.time() > deadline:
                sys.exit("the cars did not register")
            time.sleep(0.2)

    def car_of(self, request_id):
        """Which car (0 or 1) served a request, from the agents' job logs."""
        for car, log in enumerate(self.logs):
            with open(log) as f:
                if any(json.loads(line).get("request_id") == request_id for line in f if line.strip()):
                    return car
        return None

    def close(self):
        for proc in self.agents + [r.proc for r in self.runtimes] + [self.gateway]:
            stop(proc)


def stream(url, body, request_id=None, started=None, first=None):
    """Streams a completion; returns (ttft seconds, text). `started`/`first` are events for occupiers."""
    headers = {"x-request-id": request_id} if request_id else {}
    t0 = time.monotonic()
    ttft, text = None, ""
    with httpx.stream("POST", url, json=body, headers=headers, timeout=300) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                content = (choice.get("delta") or {}).get("content") or choice.get("text")
                if content:
                    if ttft is None:
                        ttft = time.monotonic() - t0
                        if first:
                            first.set()
                    text += content
            if started is not None and started.is_set():
                break
    return ttft, text


class Occupier:
    """A long answer running in the background until stopped (it keeps one car's runtime busy)."""

    def __init__(self, url, body):
        self.stop_event, self.first = threading.Event(), threading.Event()
        def run():
            try:
                stream(url, body, None, self.stop_event, self.first)
            except httpx.HTTPError:
                pass  # stopped: the connection closed under it
        self.thread = threading.Thread(target=run)
        self.thread.start()
        if not self.first.wait(120):
            sys.exit("the long answer never started")

    def stop(self):
        self.stop_event.set()
        self.thread.join()


class Conversation:
    def __init__(self, rng, tag):
        self.rng, self.tag = rng, tag
        system = (f"You are assistant {tag}. " + words(rng, 40) + ". ") * 3
        self.messages = [{"role": "system", "content": system}, self.user()]

    def user(self):
        return {"role": "user", "content": "Tell me about " + words(self.rng, 40) + "?"}

    def body(self, max_tokens=24):
        return {"model": MODEL, "stream": True, "temperature": 0, "max_tokens": max_tokens,
                "messages": list(self.messages)}

    def answered(self, text):
        self.messages += [{"role": "assistant", "content": text}, self.user()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--bin", help="directory with fleetgate and fleet-agent (default: a release build)")
    args = parser.parse_args()
    if args.bin:
        bin_dir = args.bin
    else:
        subprocess.run(["swift", "build", "-c", "release", "--product", "fleetgate"], cwd=ROOT, check=True)
        subprocess.run(["swift", "build", "-c", "release", "--product", "fleet-agent"], cwd=ROOT, check=True)
        bin_dir = os.path.join(ROOT, ".build", "release")
    fleet = Fleet(bin_dir)
    url = f"http://127.0.0.1:{fleet.client}/v1/chat/completions"
    rng = random.Random(14)
    hold = {k: [] for k in range(2, args.turns + 1)}
    other = {k: [] for k in range(2, args.turns + 1)}
    misrouted = 0
    serial = 0

    def send(conversation, max_tokens=24):
        nonlocal serial
        serial += 1
        rid = f"aff-{serial}"
        ttft, text = stream(url, conversation.body(max_tokens), rid)
        time.sleep(0.2)  # the job log is flushed when the job ends
        return ttft, text, fleet.car_of(rid)

    try:
        # Both cars serve one conversation-sized request first (at once: one slot each), so each has
        # measured its rates; a car never observed is believed at its class's advertised rate.
        warm = [threading.Thread(target=stream, args=(url, Conversation(rng, f"w{i}").body(), f"warm-{i}"))
                for i in range(2)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        for rep in range(args.reps):
            # Holding: one conversation, every turn >= 2 measured while the other car's runtime is busy.
            c = Conversation(rng, f"h{rep}")
            _, text, holder = send(c)
            c.answered(text)
            for k in range(2, args.turns + 1):
                idle = fleet.runtimes[1 - holder].port
                occupier = Occupier(f"http://127.0.0.1:{idle}/v1/completions",
                                    {"model": MODEL, "prompt": words(rng, 200), "max_tokens": 400, "stream": True})
                ttft, text, car = send(c)
                occupier.stop()
                if ttft is None:
                    print(f"rep {rep} turn {k} holding: no token (car {car}, holder {holder})", flush=True)
                    break
                if car != holder:
                    misrouted += 1
                hold[k].append(ttft)
                c.answered(text)
                print(f"rep {rep} turn {k} holding: {ttft * 1000:.0f} ms (car {car}, holder {holder})", flush=True)
            # Other: for each k, a fresh conversation built on one car, then turn k forced off it.
            for k in range(2, args.turns + 1):
                c = Conversation(rng, f"o{rep}-{k}")
                holder = None
                for _ in range(1, k):
                    _, text, holder = send(c)
                    c.answered(text)
                occupier = Occupier(url, c.body(max_tokens=400))
                ttft, _, car = send(c)
                occupier.stop()
                if ttft is None:
                    print(f"rep {rep} turn {k} other: no token (car {car}, holder {holder})", flush=True)
                    continue
                if car == holder:
                    misrouted += 1
                other[k].append(ttft)
                print(f"rep {rep} turn {k} other: {ttft * 1000:.0f} ms (car {car}, holder {holder})", flush=True)
    finally:
        fleet.close()
    print()
    print("| turn | TTFT on the car holding the prefix, ms (median) | forced onto the other car, ms (median) | ratio |")
    print("|---|---|---|---|")
    for k in hold:
        if not hold[k] or not other[k]:
            continue
        h, o = median(hold[k]) * 1000, median(other[k]) * 1000
        print(f"| {k} | {h:.0f} | {o:.0f} | {o / h:.1f}× |")
    all_h = median([x for v in hold.values() for x in v]) * 1000
    all_o = median([x for v in other.values() for x in v]) * 1000
    print(f"| all ≥ 2 | {all_h:.0f} | {all_o:.0f} | {all_o / all_h:.1f}× |")
    print(f"\n{args.reps} repetitions; turns not where expected: {misrouted}")


if __name__ == "__main__":
    main()
