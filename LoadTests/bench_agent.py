#!/usr/bin/env python3
"""The agent's relay alone: CPU per stream and per chunk of `fleet-agent --engine openai-local`
in front of the bursting backend (issue #19, deliverable 2's bar "≤ 10 µs CPU per chunk and
≤ 100 µs per stream beyond its runtime").

Only bench_gateway.py's car path: app (fleet-load, h2c) → `fleetgate serve --threads 1` → tunnel →
`fleet-agent run --engine openai-local --slots 64` → `burst_backend.py` (32 token chunks a stream,
written back to back). Each load reads, from /proc/PID/task/*/schedstat before and after, the CPU
of three processes — the agent, the runtime (the backend: what the agent's relay is "beyond") and
the gateway — and divides by the streams that completed. "µs/chunk" is µs/stream ÷ 32, the token
chunks (the agent also relays a role chunk, a usage chunk and `[DONE]`).

    python3 LoadTests/bench_agent.py --bin DIR [--baseline-bin /tmp/before]   (DIR: scripts/build-release.sh DIR) \\
        [--rate 1000 --duration 5 | --closed 6000] [--rounds 3] [--perf /tmp/agent]

With --baseline-bin both builds run in the same invocation, alternating each round, against the
same backend. --perf PREFIX records the agent (`perf record -F 4000 -g`) during round 1's load of
each build into PREFIX-<build>.data (perf's own CPU is not the agent's). Load: open loop at --rate streams/s over 16 connections (fleet-load), or with
--closed N, N streams closed loop over 16 connections (h2load -c 16 -m 1).
"""
import argparse
import json
import os
import signal
import subprocess
import tempfile
import time

from bench_common import ROOT, cpu_seconds, free_port, median, start, stop, wait_port
from bench_gateway import BODY_STREAM, PY, Gateway, fleet_load, h2load

CHUNKS = 32


def one_load(bin_dir, gateway, backend, args, body_file, perf_file=None):
    pids = {"agent": gateway.agent.pid, "runtime": backend.pid, "gateway": gateway.proc.pid}
    perf = (subprocess.Popen(["perf", "record", "-F", "4000", "-g", "-o", perf_file, "-p", str(gateway.agent.pid)],
                             stdout=subprocess.DEVNULL, stderr=open(perf_file + ".log", "w")) if perf_file else None)
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.time()
    if args.closed:
        rate, ok = h2load(gateway.port, False, args.closed, body_file)
        res = {"ok": ok, "failed": args.closed - ok, "rate": rate}
    else:
        res = fleet_load(bin_dir, gateway.port, ["--rate", str(args.rate), "--duration", str(args.duration),
                                                 "--connections", "16"])
    wall = time.time() - t0
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    for k, p in pids.items():
        res[k + "_us"] = (cpu_seconds(p) - before[k]) / max(1, res["ok"]) * 1e6
    res["agent_cores"] = res["agent_us"] * res["ok"] / 1e6 / wall
    return res


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="this build's binaries, scripts/build-release.sh DIR (fleetgate, fleet-agent, fleet-load)")
    parser.add_argument("--baseline-bin", help="a second build's fleet-agent, measured as 'before' in the same run")
    parser.add_argument("--gateway-bin", help="fleetgate and fleet-load from this build instead (default: --bin)")
    parser.add_argument("--rate", type=float, default=1000, help="open-loop streams/s")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--closed", type=int, default=0, help="closed loop: this many streams with h2load -c 16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--perf", metavar="PREFIX", help="perf record the agent in round 1: PREFIX-<build>.data")
    parser.add_argument("--log-level", default="info", help="the gateway's (the agent runs at warning, as in production)")
    args = parser.parse_args()
    backend_port = free_port()
    backend = subprocess.Popen([PY, os.path.join(ROOT, "LoadTests", "burst_backend.py"), "--port", str(backend_port)],
                               stdout=subprocess.DEVNULL)
    wait_port(backend_port)
    gateway_bin = args.gateway_bin or args.bin
    builds = [("after", args.bin)] + ([("before", args.baseline_bin)] if args.baseline_bin else [])
    links = tempfile.TemporaryDirectory()
    gateways = []
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as body:
        json.dump(BODY_STREAM, body)
    try:
        for name, directory in builds:
            # One directory per build: its fleet-agent beside the one gateway build's fleetgate.
            both = os.path.join(links.name, name)
            os.mkdir(both)
            os.symlink(os.path.abspath(os.path.join(directory, "fleet-agent")), os.path.join(both, "fleet-agent"))
            os.symlink(os.path.abspath(os.path.join(gateway_bin, "fleetgate")), os.path.join(both, "fleetgate"))
            gateways.append((name, directory, Gateway("car-" + name, both, backend_port, True, args.log_level)))
        for _, directory, g in gateways:
            fleet_load(gateway_bin, g.port, ["--rate", "0", "--count", "200"])  # warm-up
        rows = {}
        for r in range(args.rounds):
            order = gateways[r % len(gateways):] + gateways[:r % len(gateways)]
            for name, directory, g in order:
                perf_file = f"{args.perf}-{name}.data" if args.perf and r == 0 else None
                res = one_load(gateway_bin, g, backend, args, body.name, perf_file)
                rows.setdefault(name, []).append(res)
                print(f"round {r + 1} {name}: ok {res['ok']:.0f} failed {res['failed']:.0f}, agent "
                      f"{res['agent_us']:.0f} µs/stream ({res['agent_cores']:.2f} core), runtime "
                      f"{res['runtime_us']:.0f}, gateway {res['gateway_us']:.0f}", flush=True)
                time.sleep(0.5)
    finally:
        for _, _, g in gateways:
            g.stop()
        stop(backend)
        os.unlink(body.name)
        links.cleanup()
    load = f"closed loop {args.closed} streams, h2load -c 16" if args.closed else f"open loop {args.rate:g}/s for {args.duration:g} s"
    print(f"\n{load}; medians of {args.rounds} rounds; CPU µs per completed stream")
    print("| build | ok % | agent µs/stream | agent µs/chunk | runtime µs/stream | gateway µs/stream |")
    print("|---|---|---|---|---|---|")
    for name, _, _ in gateways:
        rs = rows[name]
        ok = median([100 * x["ok"] / max(1, x["ok"] + x["failed"]) for x in rs])
        agent = median([x["agent_us"] for x in rs])
        print(f"| {name} | {ok:.1f} | {agent:.0f} | {agent / CHUNKS:.1f} | {median([x['runtime_us'] for x in rs]):.0f}"
              f" | {median([x['gateway_us'] for x in rs]):.0f} |")


if __name__ == "__main__":
    main()
