#!/usr/bin/env python3
"""Failover benchmark: the gap a client sees when the car serving its stream is killed or frozen,
and what hedging costs at its default budget. Release builds, production logging (info, with the
audit line), real processes on loopback; stops by itself.

Failover: four synthetic AI5 agents at 25 tokens/s per stream; each round starts --streams streams
of --tokens tokens, and one second in, the busiest agent is killed (-9) or frozen (SIGSTOP). For every
stream that moved (counted from the surviving agents' job records: resume_from > 0) the gap is the
longest silence between two of its tokens — last token before the failure to first after it.
Every stream's text is checked against the reference (the synthetic text function): lost or
repeated tokens are counted, and must be 0.

At capacity (--at-capacity): four agents of --capacity-slots slots each, every slot busy with a
stream (half of them short), and the busiest agent killed once all are busy: its streams can continue only
on a slot another stream frees. Counts, per build, the streams completed with the reference text,
those ended by the SSE error, and `fleet_capacity_waits_total`; with --baseline-bin DIR two builds
alternate round by round in one run (--bin DIR: a build other than this tree's).

Hedging: --hedge-requests requests over four agents, one of them secretly 10x slower than it
advertises, with hedging on (default budget 5 %) and off, in the same run: extra attempts per
request, and the agents' extra CPU per request.

Run with the venv's Python (it has httpx): ~/.cache/fleetgate/venv/bin/python LoadTests/bench_failover.py
"""
import argparse
import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

import httpx

from bench_common import ROOT, cpu_seconds, free_port, percentile, release_build, start, stop, wait_port

WORDS = ["the", "fleet", "car", "token", "stream", "road", "charge", "battery", "signal", "route",
         "parked", "night", "energy", "compute", "model", "answer", "light", "city", "river", "quiet",
         "fast", "slow", "green", "blue", "north", "south", "east", "west", "bright", "calm",
         "and", "of", "to", "in", "on", "with", "for", "from", "over", "under"]
MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def mix(z):
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK
    return z ^ (z >> 31)


def reference(prompt, tokens):
    """SyntheticText: FNV-1a of 'user: PROMPT', then word(mix(seed + i * gamma))."""
    seed = 0xCBF29CE484222325
    for byte in f"user: {prompt}".encode():
        seed = ((seed ^ byte) * 0x100000001B3) & MASK
    return "".join(WORDS[mix((seed + i * GAMMA) & MASK) % len(WORDS)] + " " for i in range(tokens))


class Fleet:
    def __init__(self, bin_dir, env_extra=None):
        self.bin_dir = bin_dir
        self.env = dict(os.environ, FLEETGATE_FLEET_SECRET="bench-secret-0123456789abcdef", **(env_extra or {}))
        self.client, self.tunnel, self.admin = free_port(), free_port(), free_port()
        self.gateway = start([os.path.join(bin_dir, "fleetgate"), "serve", "--tunnel-auth", "token", "--client-port", str(self.client),
                              "--tunnel-port", str(self.tunnel), "--admin-port", str(self.admin), "--threads", "1",
                              "--log-level", "info"], self.env)
        wait_port(self.client)
        self.agents = {}
        self.logs = []
        self.serial = 0

    def token(self, vehicle):
        return subprocess.run([os.path.join(self.bin_dir, "fleetgate"), "token", "issue", "--vehicle-id", vehicle,
                               "--region", "eu-central"], env=self.env, capture_output=True, text=True,
                              check=True).stdout.strip()

    def add(self, slowdown=1.0, extra=(), slots=16):
        self.serial += 1
        vehicle = f"bench-{self.serial}"
        log = tempfile.NamedTemporaryFile(prefix="fleet-jobs-", suffix=".jsonl", delete=False).name
        self.logs.append(log)
        self.agents[vehicle] = start(
            [os.path.join(self.bin_dir, "fleet-agent"), "run", "--gateway", f"127.0.0.1:{self.tunnel}", "--vehicle-id",
             vehicle, "--region", "eu-central", "--hardware", "ai5", "--slots", str(slots), "--decode-tps", "25",
             "--slowdown", str(slowdown), "--job-log", log, "--log-level", "warning", *extra],
            dict(os.environ, FLEET_AGENT_TOKEN=self.token(vehicle)))
        return vehicle

    def wait_cars(self, count):
        deadline = time.time() + 30
        while time.time() < deadline:
            if json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz")).get("cars") == count:
                return
            time.sleep(0.1)
        raise SystemExit(f"{count} cars did not register")

    def records(self):
        out = []
        for log in self.logs:
            with open(log) as f:
                out += [json.loads(line) for line in f if line.strip()]
        return out

    def close(self):
        for proc in self.agents.values():
            os.kill(proc.pid, signal.SIGCONT)
            stop(proc)
        stop(self.gateway)


async def one_stream(client, port, prompt, tokens, request_id):
    body = {"model": "fleet-8b", "stream": True, "max_tokens": tokens,
            "messages": [{"role": "user", "content": prompt}]}
    arrivals, text, error = [], "", None
    async with client.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                             headers={"x-request-id": request_id}, timeout=120) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                error = chunk["error"].get("code")
                continue
            for choice in chunk["choices"]:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    arrivals.append(time.monotonic())
                    text += content
    return arrivals, text, error


async def failover_round(fleet, fault, streams, tokens, round_index):
    # httpx speaks HTTP/2 over TLS only: over cleartext each concurrent stream needs a connection.
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=streams)) as client:
        prompts = [f"failover {fault} {round_index} {i}" for i in range(streams)]
        cpu_before = {name: cpu_seconds(proc.pid) for name, proc in fleet.agents.items()}
        tasks = [asyncio.create_task(one_stream(client, fleet.client, p, tokens, f"{fault}-{round_index}-{i}"))
                 for i, p in enumerate(prompts)]
        await asyncio.sleep(1.0)
        # The victim is the busiest car (most CPU in that second): the one serving most streams.
        victim = max(fleet.agents, key=lambda name: cpu_seconds(fleet.agents[name].pid) - cpu_before[name])
        proc = fleet.agents.pop(victim)
        os.kill(proc.pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        results = await asyncio.gather(*tasks)
        os.kill(proc.pid, signal.SIGCONT)
        stop(proc)
    moved = {r["request_id"] for r in fleet.records() if r["resume_from"] > 0}
    gaps, bad, errors = [], 0, 0
    for i, (arrivals, text, error) in enumerate(results):
        if error:
            errors += 1
            continue
        if text != reference(prompts[i], tokens):
            bad += 1
        if f"{fault}-{round_index}-{i}" in moved and len(arrivals) > 1:
            gaps.append(max(b - a for a, b in zip(arrivals, arrivals[1:])) * 1000)
    fleet.add()  # a replacement car
    fleet.wait_cars(4)
    return gaps, bad, errors, len(gaps)


async def capacity_round(fleet, slots, round_index, short_tokens=30, long_tokens=150):
    """Every slot busy, half with short streams; then the busiest car killed."""
    count = 4 * slots
    plan = [(f"capacity {round_index} {i}", short_tokens if i % 2 else long_tokens) for i in range(count)]
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=count)) as client:
        cpu_before = {name: cpu_seconds(proc.pid) for name, proc in fleet.agents.items()}
        tasks = [asyncio.create_task(one_stream(client, fleet.client, p, n, f"cap-{round_index}-{i}"))
                 for i, (p, n) in enumerate(plan)]
        # The kill comes once every slot is busy (or after 5 s).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            cars = json.load(urllib.request.urlopen(f"http://127.0.0.1:{fleet.admin}/admin/cars"))
            if sum(c["inFlight"] for c in cars) >= count:
                break
        if os.environ.get("BENCH_DEBUG"):
            print("in flight at the kill:", [c["inFlight"] for c in cars])
        victim = max(fleet.agents, key=lambda name: cpu_seconds(fleet.agents[name].pid) - cpu_before[name])
        proc = fleet.agents.pop(victim)
        os.kill(proc.pid, signal.SIGKILL)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stop(proc)
    ok = errors = bad = 0
    for (prompt, tokens), result in zip(plan, results):
        if isinstance(result, Exception):
            errors += 1
            continue
        _, text, error = result
        if error:
            errors += 1
        elif text == reference(prompt, tokens):
            ok += 1
        else:
            bad += 1
    return count, ok, errors, bad


def capacity_waits(fleet):
    text = urllib.request.urlopen(f"http://127.0.0.1:{fleet.admin}/metrics").read().decode()
    waits = {}
    for line in text.splitlines():
        if line.startswith("fleet_capacity_waits_total{"):
            waits[line.split('result="')[1].split('"')[0]] = int(float(line.rsplit(" ", 1)[1]))
    return waits


def capacity_bench(builds, rounds, slots):
    totals = {name: [0, 0, 0, 0, {}] for name, _ in builds}
    for r in range(rounds):
        for name, bin_dir in builds:
            fleet = Fleet(bin_dir)
            try:
                for _ in range(4):
                    fleet.add(slots=slots)
                fleet.wait_cars(4)
                count, ok, errors, bad = asyncio.run(capacity_round(fleet, slots, r))
                waits = capacity_waits(fleet)
            finally:
                fleet.close()
            t = totals[name]
            t[0] += count
            t[1] += ok
            t[2] += errors
            t[3] += bad
            for key, value in waits.items():
                t[4][key] = t[4].get(key, 0) + value
    print("| build | rounds | streams | completed, text exact | ended by the SSE error | lost or repeated | capacity waits |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in builds:
        count, ok, errors, bad, waits = totals[name]
        shown = ", ".join(f"{k} {v}" for k, v in sorted(waits.items())) or "none (no such metric)"
        print(f"| {name} | {rounds} | {count} | {ok} | {errors} | {bad} | {shown} |")


async def hedge_run(fleet, requests):
    cpu_before = sum(cpu_seconds(p.pid) for p in fleet.agents.values())
    attempts = 0
    async with httpx.AsyncClient(http2=True) as client:
        sem = asyncio.Semaphore(8)

        async def one(i):
            nonlocal attempts
            async with sem:
                body = {"model": "fleet-8b", "stream": True, "max_tokens": 8,
                        "messages": [{"role": "user", "content": "hedge " * 200 + str(i)}]}
                async with client.stream("POST", f"http://127.0.0.1:{fleet.client}/v1/chat/completions",
                                         json=body, timeout=120) as response:
                    attempts += int(response.headers.get("x-fleet-attempts", "1"))
                    async for _ in response.aiter_lines():
                        pass

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(requests)))
        elapsed = time.monotonic() - started
    cpu = sum(cpu_seconds(p.pid) for p in fleet.agents.values()) - cpu_before
    return attempts / requests - 1, cpu / requests * 1e3, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--hedge-requests", type=int, default=200)
    parser.add_argument("--at-capacity", action="store_true", help="only the at-capacity failover rounds")
    parser.add_argument("--capacity-slots", type=int, default=3)
    parser.add_argument("--bin", help="a release build's directory (default: build this tree)")
    parser.add_argument("--baseline-bin", help="a second build, alternated with the first (--at-capacity)")
    args = parser.parse_args()
    bin_dir = args.bin or release_build("fleetgate", "fleet-agent")
    if args.at_capacity:
        builds = [("this" if not args.bin else args.bin, bin_dir)]
        if args.baseline_bin:
            builds.append((args.baseline_bin, args.baseline_bin))
        return capacity_bench(builds, args.rounds, args.capacity_slots)

    fleet = Fleet(bin_dir)
    try:
        for _ in range(4):
            fleet.add()
        fleet.wait_cars(4)
        print("| fault | rounds | streams | moved | failover gap p50 / p99 ms | lost or repeated | SSE errors |")
        print("|---|---|---|---|---|---|---|")
        for fault in ("kill", "freeze"):
            gaps, bad, errors, moved = [], 0, 0, 0
            for r in range(args.rounds):
                g, b, e, m = asyncio.run(failover_round(fleet, fault, args.streams, args.tokens, r))
                gaps += g
                bad += b
                errors += e
                moved += m
            print(f"| {fault} | {args.rounds} | {args.rounds * args.streams} | {moved} | "
                  f"{percentile(gaps, 50):.0f} / {percentile(gaps, 99):.0f} | {bad} | {errors} |")
    finally:
        fleet.close()

    rows = []
    for hedging in ("true", "false"):
        fleet = Fleet(bin_dir, {"FLEETGATE_DISPATCH_HEDGING": hedging})
        try:
            fleet.add(slowdown=10)  # advertises AI5 rates, runs 10x slower: the predictor learns it
            for _ in range(3):
                fleet.add()
            fleet.wait_cars(4)
            extra, cpu_ms, elapsed = asyncio.run(hedge_run(fleet, args.hedge_requests))
            rows.append((hedging, extra, cpu_ms, elapsed))
        finally:
            fleet.close()
    print()
    print("| hedging | requests | extra attempts per request | agents' CPU ms per request | run s |")
    print("|---|---|---|---|---|")
    for hedging, extra, cpu_ms, elapsed in rows:
        print(f"| {hedging} | {args.hedge_requests} | {extra:.3f} | {cpu_ms:.2f} | {elapsed:.1f} |")


if __name__ == "__main__":
    main()
