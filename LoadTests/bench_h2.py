#!/usr/bin/env python3
"""HTTP/2 engine benchmark: FleetHTTP2's public stream API vs nghttpd, same run, rotated order.

Method: shared/bench/README.md. Each server runs with one event loop / worker on loopback (h2c,
prior knowledge); h2load drives it. For every round and server:
  (a) throughput: h2load -c 50 -m 10 -n N GET /           → req/s and server CPU µs per request
  (b) latency:    h2load -c 1 -m 1 -n M GET / --log-file   → p50/p99 of per-request time
  (c) SSE:        h2load -c 50 -m 10 -n K /sse?n=100        → streams/s, CPU µs per stream
nghttpd cannot pace events, so for (c) it serves a file with the same 2,500 bytes as our 100
events (each of ours is a separate DATA frame, nghttpd's are coalesced: equal bytes, not equal
frames). Per-stream memory: (peak RSS during (c) − RSS before) / 500 concurrent streams.
Prints medians over rounds and ratios against nghttpd.
"""
import argparse
import os
import re
import subprocess
import tempfile

from bench_common import (ROOT, cpu_seconds, free_port, median, percentile, peak_rss_mb, pin, release_build,
                          rss_mb, start, stop, wait_port)

EVENT = 'data: {"token":"word"}\n\n'
PIN_CLIENT = []  # ["taskset", "-c", "1"] with --pin


def h2load(args):
    out = subprocess.run([*PIN_CLIENT, "h2load", *args], capture_output=True, text=True, check=True).stdout
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded", out)
    return float(m.group(1)), int(ok.group(1))


def measure(name, cmd, url_root, sse_path, n, m, k):
    port = free_port()
    proc = start([c.replace("PORT", str(port)) for c in cmd])
    wait_port(port)
    if PIN_CLIENT:
        pin(proc.pid, {0})
    url = f"http://127.0.0.1:{port}"
    try:
        h2load(["-c", "50", "-m", "10", "-n", str(n // 5), url + url_root])  # warm-up
        before = cpu_seconds(proc.pid)
        rate, ok = h2load(["-c", "50", "-m", "10", "-n", str(n), url + url_root])
        cpu = cpu_seconds(proc.pid) - before
        with tempfile.NamedTemporaryFile(suffix=".log") as log:
            h2load(["-c", "1", "-m", "1", "-n", str(m), "--log-file", log.name, url + url_root])
            times = [int(line.split()[2]) for line in open(log.name) if line.strip()]
        rss0 = rss_mb(proc.pid)
        before = cpu_seconds(proc.pid)
        sse_rate, sse_ok = h2load(["-c", "50", "-m", "10", "-n", str(k), url + sse_path])
        sse_cpu = cpu_seconds(proc.pid) - before
        peak = peak_rss_mb(proc.pid)
        return {
            "name": name, "rps": rate, "cpu_us": cpu / ok * 1e6, "p50": percentile(times, 50), "p99": percentile(times, 99),
            "sse_rps": sse_rate, "sse_cpu_us": sse_cpu / sse_ok * 1e6, "peak_mb": peak,
            "per_stream_kb": max(0.0, (peak - rss0) * 1024 / 500),
        }
    finally:
        stop(proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--latency-requests", type=int, default=20_000)
    parser.add_argument("--sse-streams", type=int, default=10_000)
    parser.add_argument("--baseline-bin", help="a directory with an earlier build's fleet-h2bench, run in the same "
                        "rounds as 'FleetHTTP2-before' (e.g. `scripts/build-release.sh DIR fleet-h2bench` of the commit before a change: link both alike)")
    parser.add_argument("--no-build", action="store_true", help="use .build-static/release/fleet-h2bench (scripts/build-release.sh) as it is")
    parser.add_argument("--pin", action="store_true",
                        help="the server on CPU 0, h2load on CPU 1: on this 2-core machine, unpinned rounds of one "
                             "binary differed by up to 2x")
    args = parser.parse_args()
    if args.pin:
        PIN_CLIENT[:] = ["taskset", "-c", "1"]
    bin_dir = os.path.join(ROOT, ".build-static", "release") if args.no_build else release_build("fleet-h2bench")
    www = tempfile.mkdtemp(prefix="fleet-bench-www-")
    open(os.path.join(www, "index.html"), "w").write("Hello, world\n")
    open(os.path.join(www, "sse"), "w").write(EVENT * 100)
    servers = [
        ("nghttpd", ["nghttpd", "--no-tls", "-n", "1", "-d", www, "PORT"], "/index.html", "/sse"),
        ("FleetHTTP2", [os.path.join(bin_dir, "fleet-h2bench"), "PORT"], "/", "/sse?n=100"),
    ]
    if args.baseline_bin:
        servers.append(
            ("FleetHTTP2-before", [os.path.join(args.baseline_bin, "fleet-h2bench"), "PORT"], "/", "/sse?n=100"))
    results = {name: [] for name, *_ in servers}
    for r in range(args.rounds):
        order = servers if r % 2 == 0 else list(reversed(servers))
        for name, cmd, root, sse in order:
            results[name].append(measure(name, cmd, root, sse, args.requests, args.latency_requests, args.sse_streams))
            print(f"round {r + 1}: {name}: {results[name][-1]}", flush=True)
    med = {name: {key: median([x[key] for x in rows]) for key in rows[0] if key != "name"} for name, rows in results.items()}
    base = med["nghttpd"]
    print()
    print(f"medians of {args.rounds} rounds; ratios vs nghttpd in the same run")
    print("| server | c50 m10 req/s | vs nghttpd | CPU µs/req | vs nghttpd | c1 m1 p50 / p99 µs | p50 vs nghttpd | SSE streams/s | SSE CPU µs/stream | peak RSS MB | KB/stream |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m in med.items():
        print(f"| {name} | {m['rps']:,.0f} | {m['rps'] / base['rps']:.2f} | {m['cpu_us']:.2f} | {m['cpu_us'] / base['cpu_us']:.2f} | "
              f"{m['p50']:.0f} / {m['p99']:.0f} | {m['p50'] / base['p50']:.2f} | {m['sse_rps']:,.0f} | {m['sse_cpu_us']:.1f} | "
              f"{m['peak_mb']:.1f} | {m['per_stream_kb']:.1f} |")


if __name__ == "__main__":
    main()
