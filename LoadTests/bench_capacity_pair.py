#!/usr/bin/env python3
"""Closed-loop central capacity of two gateway builds, pinned and alternating: the A/B for a change of a few per cent.

Usage: bench_capacity_pair.py DIR_A DIR_B [PAIRS]   (each DIR a release build's directory with fleetgate)

bench_gateway.py's capacity row (unpinned, 3 rounds, medians) moved ±50 % within an hour on this shared
2-core machine (session 15), so a 7 % instruction cut could not show in it. Here the gateway (one event
loop, info logging with the audit line) runs on CPU 0, nginx (static_backend.py: the 32-chunk stream in one
read) and h2load (16 connections, one stream each, 20,000 streams after 2,000 of warm-up) on CPU 1; each
pair runs both builds back to back, the order alternating. Prints every run, the medians, and each pair's
rate ratio A ÷ B.
"""
import os, sys, subprocess, time, json, tempfile, statistics
import static_backend
from bench_common import free_port, wait_port
builds = sys.argv[1:3]; pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 8
port = free_port()
proc, root = static_backend.start(port)
subprocess.run(["taskset", "-p", "-a", "-c", "1", str(proc.pid)], capture_output=True)
body = tempfile.NamedTemporaryFile("w", delete=False, suffix=".json")
json.dump({"model": "fleet-8b", "max_tokens": 32, "stream": True, "messages": [{"role": "user", "content": "hello"}]}, body); body.close()
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
res = {b: [] for b in builds}
env = dict(os.environ, FLEETGATE_FLEET_SECRET="bench-secret-0123456789abcdef", FLEETGATE_TUNNEL_AUTH="token")
try:
    for i in range(pairs):
        for b in (builds if i % 2 == 0 else builds[::-1]):
            p, t, a = free_port(), free_port(), free_port()
            g = subprocess.Popen(["taskset", "-c", "0", os.path.join(b, "fleetgate"), "serve", "--client-port", str(p), "--tunnel-port", str(t), "--admin-port", str(a), "--threads", "1", "--log-level", "info", "--central", f"eu-central=http://127.0.0.1:{port}/v1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(p); time.sleep(1.5)
            args = ["taskset", "-c", "1", "h2load", "-n", "20000", "-c", "16", "-m", "1", "-d", body.name, "-H", "content-type: application/json", f"http://127.0.0.1:{p}/v1/chat/completions"]
            subprocess.run(args[:3] + ["-n", "2000"] + args[5:], capture_output=True)
            c0 = cpu(g.pid); out = subprocess.run(args, capture_output=True, text=True).stdout; c1 = cpu(g.pid)
            rate = ok = 0
            for line in out.splitlines():
                if line.startswith("finished in"): rate = float(line.split(",")[1].split()[0])
                if line.startswith("status codes:"): ok = int(line.split()[2])
            g.terminate(); g.wait()
            res[b].append((rate * ok / 20000, (c1 - c0) / max(ok, 1) * 1e6))
            print(f"pair {i+1} {b}: {rate*ok/20000:.0f}/s, {(c1-c0)/max(ok,1)*1e6:.0f} µs CPU each", flush=True)
finally:
    proc.terminate()
    subprocess.run(["pkill", "-f", root], capture_output=True)
for b in builds:
    print(b, "median rate", statistics.median(r for r, _ in res[b]), "median µs", statistics.median(c for _, c in res[b]))
ratios = [x[0] / y[0] for x, y in zip(res[builds[0]], res[builds[1]])]
print("per-pair rate ratio", [f"{r:.3f}" for r in ratios], "median", f"{statistics.median(ratios):.3f}")
