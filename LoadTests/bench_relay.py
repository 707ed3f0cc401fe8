#!/usr/bin/env python3
"""Relay benchmark: what the gateway adds to a token stream, against nghttpx on the same workload.

One agent (`fleet-agent run --listen`) serves the same synthetic engine both on its tunnel to the
gateway and on a local h2c port. The same 32-token streaming workload is sent, in one run:
  app → agent directly;  app → nghttpx (1 worker) → agent;  app → fleetgate (1 event loop) → tunnel → agent.
TTFT is measured by `fleet-load` from request to the first content token. Reported: TTFT p50/p99
per path, the time each relay adds over direct, and the relay's CPU per stream (user+sys from
/proc/PID/stat over the run ÷ streams served). Rounds rotate the order; medians are reported.
The engine is made fast (1,000 tok/s, 512 slots) so the relay, not the engine, is what differs.
"""
import argparse
import json
import os
import subprocess
import time
import urllib.request

from bench_common import cpu_seconds, free_port, median, release_build, start, stop, wait_port


def fmt_cpu(value):
    return "" if value != value else f"{value:.0f}"


def load(bin_dir, port, args):
    out = subprocess.run([os.path.join(bin_dir, "fleet-load"), "--target", f"127.0.0.1:{port}", *args],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", default="50,100,200", help="open-loop streams/s")
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--single", type=int, default=300, help="sequential streams for single-stream latency")
    parser.add_argument("--log-level", default="info", help="the gateway's (production: info, with the audit line)")
    parser.add_argument("--baseline-bin", help="a second fleetgate/fleet-agent build (e.g. an earlier commit's "
                        "scripts/build-release.sh DIR, linked as this run's) measured in the same run as 'fleetgate-before'")
    parser.add_argument("--baseline-own-agent", action="store_true",
                        help="run the baseline gateway with the baseline build's own fleet-agent instead of this "
                        "build's (default: the same agent for both, so only the gateway differs; an older agent "
                        "paces tokens differently — 68c68c6's coalesced ~2.6 tokens a tunnel read at 1,000 tok/s "
                        "and finished 32 tokens in ~48 ms instead of ~34 — which changes the gateway's work per stream)")
    args = parser.parse_args()
    bin_dir = release_build("fleetgate", "fleet-agent", "fleet-load")
    env = dict(os.environ, FLEETGATE_FLEET_SECRET="bench-secret-0123456789abcdef")
    client, tunnel, admin, agent_port, nghttpx_port = (free_port() for _ in range(5))
    gateway = start([os.path.join(bin_dir, "fleetgate"), "serve", "--tunnel-auth", "token", "--client-port", str(client), "--tunnel-port", str(tunnel),
                     "--admin-port", str(admin), "--threads", "1", "--log-level", args.log_level], env)
    wait_port(client)
    token = subprocess.run([os.path.join(bin_dir, "fleetgate"), "token", "issue", "--vehicle-id", "bench-car", "--region",
                            "eu-central"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    agent = start([os.path.join(bin_dir, "fleet-agent"), "run", "--gateway", f"127.0.0.1:{tunnel}", "--vehicle-id", "bench-car",
                   "--region", "eu-central", "--hardware", "ai5", "--slots", "512", "--decode-tps", "1000",
                   "--prefill-tps", "100000", "--listen", f"127.0.0.1:{agent_port}", "--log-level", "warning"],
                  dict(os.environ, FLEET_AGENT_TOKEN=token))  # secrets never on the command line
    nghttpx = start(["nghttpx", "--conf=/dev/null", "--workers=1", f"--frontend=127.0.0.1,{nghttpx_port};no-tls",
                     f"--backend=127.0.0.1,{agent_port};;proto=h2", "--accesslog-file=/dev/null", "--errorlog-file=/dev/null"])
    baseline = None
    if args.baseline_bin:
        # The earlier build's gateway, side by side, with this build's agent (same engine settings) unless
        # --baseline-own-agent: the gateway is what is compared, so the tokens it relays arrive alike.
        agent_dir = args.baseline_bin if args.baseline_own_agent else bin_dir
        b_client, b_tunnel, b_admin = free_port(), free_port(), free_port()
        # Token tunnels, as this build's gateway (without it a gateway wants a fleet CA and does not start).
        before_gateway = start([os.path.join(args.baseline_bin, "fleetgate"), "serve", "--tunnel-auth", "token",
                                "--client-port", str(b_client),
                                "--tunnel-port", str(b_tunnel), "--admin-port", str(b_admin), "--threads", "1",
                                "--log-level", args.log_level], env)
        wait_port(b_client)
        b_token = subprocess.run([os.path.join(args.baseline_bin, "fleetgate"), "token", "issue", "--vehicle-id",
                                  "bench-car", "--region", "eu-central"], env=env, capture_output=True, text=True,
                                 check=True).stdout.strip()
        before_agent = start([os.path.join(agent_dir, "fleet-agent"), "run", "--gateway", f"127.0.0.1:{b_tunnel}",
                              "--vehicle-id", "bench-car", "--region", "eu-central", "--hardware", "ai5", "--slots", "512",
                              "--decode-tps", "1000", "--prefill-tps", "100000", "--log-level", "warning"],
                             dict(os.environ, FLEET_AGENT_TOKEN=b_token))
        baseline = (b_client, before_gateway, before_agent, b_admin)
    try:
        if baseline:
            deadline = time.time() + 20
            while time.time() < deadline:
                if json.load(urllib.request.urlopen(f"http://127.0.0.1:{baseline[3]}/readyz")).get("cars") == 1:
                    break
                time.sleep(0.1)
        wait_port(agent_port)
        wait_port(nghttpx_port)
        deadline = time.time() + 20
        while time.time() < deadline:
            ready = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz"))
            if ready.get("cars") == 1:
                break
            time.sleep(0.1)
        paths = [("direct", agent_port, None), ("nghttpx", nghttpx_port, nghttpx), ("fleetgate", client, gateway)]
        if baseline:
            paths.append(("fleetgate-before", baseline[0], baseline[1]))
        rates = [float(r) for r in args.rates.split(",")]
        rows = {}
        for r in range(args.rounds):
            order = paths[r % len(paths):] + paths[:r % len(paths)]
            for name, port, proc in order:
                load(bin_dir, port, ["--rate", "0", "--count", "50"])  # warm-up
                single = load(bin_dir, port, ["--rate", "0", "--count", str(args.single), "--label", f"{name} single"])
                rows.setdefault((name, "single"), []).append({**single, "cpu_us": float("nan")})
                for rate in rates:
                    before = cpu_seconds(proc.pid) if proc else 0
                    res = load(bin_dir, port, ["--rate", str(rate), "--duration", str(args.duration), "--label", f"{name} {rate}"])
                    cpu = (cpu_seconds(proc.pid) - before) if proc else float("nan")
                    res["cpu_us"] = cpu / max(1, res["ok"]) * 1e6
                    rows.setdefault((name, rate), []).append(res)
                print(f"round {r + 1} {name}: single {single['ttft_p50_ms']} ms p50", flush=True)
        print()
        print(f"32-token streams; medians of {args.rounds} rounds; 'added' = path TTFT − direct TTFT at the same load")
        print("| load | path | ok / failed | TTFT p50 ms | TTFT p99 ms | added p50 ms | added p99 ms | relay CPU µs/stream | CPU vs nghttpx |")
        print("|---|---|---|---|---|---|---|---|---|")
        for load_key in ["single", *rates]:
            med = {name: {k: median([x[k] for x in rows[(name, load_key)]]) for k in ["ttft_p50_ms", "ttft_p99_ms", "cpu_us", "ok", "failed"]}
                   for name, *_ in paths}
            for name, *_ in paths:
                m = med[name]
                added50 = m["ttft_p50_ms"] - med["direct"]["ttft_p50_ms"]
                added99 = m["ttft_p99_ms"] - med["direct"]["ttft_p99_ms"]
                ratio = m["cpu_us"] / med["nghttpx"]["cpu_us"] if name.startswith("fleetgate") else float("nan")
                label = "1 at a time" if load_key == "single" else f"{load_key:g}/s"
                print(f"| {label} | {name} | {m['ok']:.0f} / {m['failed']:.0f} | {m['ttft_p50_ms']:.3f} | {m['ttft_p99_ms']:.3f} | "
                      f"{'' if name == 'direct' else f'{added50:+.3f}'} | {'' if name == 'direct' else f'{added99:+.3f}'} | "
                      f"{fmt_cpu(m['cpu_us'])} | "
                      f"{'' if ratio != ratio else f'{ratio:.2f}'} |")
    finally:
        for proc in (nghttpx, agent, gateway, *(baseline[1:3] if baseline else ())):
            stop(proc)


if __name__ == "__main__":
    main()
