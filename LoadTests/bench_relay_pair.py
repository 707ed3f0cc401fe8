#!/usr/bin/env python3
"""Two gateway builds, paired: CPU per relayed stream and TTFT over many alternating rounds.

bench_relay.py's paced workload (32 tokens at 1,000 tok/s, one synthetic car, `--threads 1`,
production logging), for two `fleetgate` builds side by side, each with its own car — the same
`fleet-agent` build for both (this build's unless --agent-bin), so the tokens they relay arrive alike.
Each round runs one open-loop load on each gateway, the order alternating; per load the gateway's
user and system CPU (/proc/PID/stat, 10 ms ticks) and context switches are divided by the streams
served. On this 2-core machine one round's CPU per stream moves by ±15 % (gateway, car and client share
the cores), so the report is the mean and median over rounds and the paired differences — the
companion, noise-free figure is callgrind_relay.sh's instruction count.

    python3 LoadTests/bench_relay_pair.py --bin .build/release --baseline-bin <old>/.build/release \\
        [--rates 50,100,200] [--rounds 8] [--duration 6]
"""
import argparse
import json
import os
import statistics
import subprocess
import time
import urllib.request

from bench_common import free_port, start, stop, wait_port

SECRET = "bench-secret-0123456789abcdef"


class Gateway:
    """`fleetgate serve --threads 1` from one build, with one synthetic car from the agent build."""

    def __init__(self, bin_dir, agent_dir):
        env = dict(os.environ, FLEETGATE_FLEET_SECRET=SECRET, FLEETGATE_TUNNEL_AUTH="token")
        self.port, tunnel, admin = free_port(), free_port(), free_port()
        self.proc = start([os.path.join(bin_dir, "fleetgate"), "serve", "--client-port", str(self.port),
                           "--tunnel-port", str(tunnel), "--admin-port", str(admin), "--threads", "1",
                           "--log-level", "info"], env)
        wait_port(self.port)
        token = subprocess.run([os.path.join(bin_dir, "fleetgate"), "token", "issue", "--vehicle-id", "bench-car",
                                "--region", "eu-central"], env=env, capture_output=True, text=True,
                               check=True).stdout.strip()
        self.agent = start([os.path.join(agent_dir, "fleet-agent"), "run", "--gateway", f"127.0.0.1:{tunnel}",
                            "--vehicle-id", "bench-car", "--region", "eu-central", "--hardware", "ai5", "--slots",
                            "512", "--decode-tps", "1000", "--prefill-tps", "100000", "--log-level", "warning"],
                           dict(os.environ, FLEET_AGENT_TOKEN=token))  # secrets never on the command line
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz")).get("cars") == 1:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the car did not register")

    def counters(self):
        """User and system CPU seconds, and voluntary + involuntary context switches of all threads."""
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        switches = 0
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            for line in open(f"/proc/{self.proc.pid}/task/{task}/status"):
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
        return int(fields[11]) / ticks, int(fields[12]) / ticks, switches

    def stop(self):
        stop(self.agent)
        stop(self.proc)


def load(load_bin, port, args):
    out = subprocess.run([load_bin, "--target", f"127.0.0.1:{port}", *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=".build/release", help="the build measured ('new')")
    parser.add_argument("--baseline-bin", required=True, help="the build compared with ('old')")
    parser.add_argument("--agent-bin", help="the fleet-agent build for both cars (default: --bin)")
    parser.add_argument("--rates", default="50,100,200", help="open-loop streams/s")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=6)
    args = parser.parse_args()
    load_bin = os.path.join(args.bin, "fleet-load")
    gateways = {"new": Gateway(args.bin, args.agent_bin or args.bin),
                "old": Gateway(args.baseline_bin, args.agent_bin or args.bin)}
    try:
        print("| rate | build | CPU µs/stream mean (user + sys) | median | TTFT p50 ms mean | median | switches/stream |")
        print("|---|---|---|---|---|---|---|")
        for rate in args.rates.split(","):
            rows = {name: [] for name in gateways}
            for r in range(args.rounds):
                for name in (["new", "old"] if r % 2 == 0 else ["old", "new"]):
                    gateway = gateways[name]
                    load(load_bin, gateway.port, ["--rate", "0", "--count", "30"])  # warm-up
                    user0, sys0, switches0 = gateway.counters()
                    res = load(load_bin, gateway.port, ["--rate", rate, "--duration", str(args.duration)])
                    user1, sys1, switches1 = gateway.counters()
                    ok = max(1, res["ok"])
                    rows[name].append({"cpu": (user1 - user0 + sys1 - sys0) / ok * 1e6, "ttft": res["ttft_p50_ms"],
                                       "switches": (switches1 - switches0) / ok, "failed": res["failed"]})
            for name, samples in rows.items():
                cpu = [s["cpu"] for s in samples]
                ttft = [s["ttft"] for s in samples]
                failed = sum(s["failed"] for s in samples)
                print(f"| {rate}/s | {name} | {statistics.mean(cpu):.0f} | {statistics.median(cpu):.0f} | "
                      f"{statistics.mean(ttft):.3f} | {statistics.median(ttft):.3f} | "
                      f"{statistics.mean(s['switches'] for s in samples):.1f}"
                      + (f" ({failed} failed)" if failed else "") + " |", flush=True)
            diffs = [round(a["cpu"] - b["cpu"]) for a, b in zip(rows["new"], rows["old"])]
            print(f"| {rate}/s | new − old, per round | {diffs} | | | | |", flush=True)
    finally:
        for gateway in gateways.values():
            gateway.stop()


if __name__ == "__main__":
    main()
