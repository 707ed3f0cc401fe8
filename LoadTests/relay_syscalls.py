#!/usr/bin/env python3
"""Where a relay's time goes around its syscalls, beside nghttpx in the same run (issue #19).

Two measurements, each for nghttpx (one worker) and `fleetgate serve --threads 1` (central path, info
logging with the audit line), the same backend for both:

  split   N sequential streams (h2load -c 1 -m 1) under `perf trace`: per stream, the time from the
          read that brought the request to the write of the backend request, and from the read that
          brought the backend's answer to the first write to the client. `perf trace` adds its own
          cost to every syscall (20–30 µs each here), so compare the columns, not the absolute values
          with bench_gateway.py's TTFT, nor one relay's half with the other's: nghttpx makes three
          syscalls on its answer half where the gateway makes none, which inflates its half
          (helper-92, session 35; ttft_placement.py and LoadTests/README.md have the whole path).
  rate    an open loop at --rate streams/s (fleet-load, 16 connections) under `strace -c -f`: syscalls
          per stream, and the relay's CPU per stream in a second, untraced run.

Usage: relay_syscalls.py --bin BUILD_DIR [--backend nginx|python] [--mode split|rate] [--rate 100]
(BUILD_DIR: a release build's directory with fleetgate and fleet-load; perf and strace installed.)
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import static_backend
from bench_common import ROOT, cpu_seconds, descendants, free_port, start, start_nghttpx, stop, wait_port

PY = os.environ.get("FLEETGATE_PYTHON", "python3")
BODY = '{"model":"fleet-8b","max_tokens":32,"stream":true,"messages":[{"role":"user","content":"hello"}]}'
CALL = re.compile(r"^\s*([\d.]+) \(\s*([\d.]+) ms\): \S+ (read|write|writev)\(fd: (\d+).*\)\s+= (\d+)")


def start_gateway(bin_dir, backend_port):
    port, tunnel, admin = free_port(), free_port(), free_port()
    env = dict(os.environ, FLEETGATE_FLEET_SECRET="bench-secret-0123456789abcdef", FLEETGATE_TUNNEL_AUTH="token")
    proc = subprocess.Popen([os.path.join(bin_dir, "fleetgate"), "serve", "--client-port", str(port), "--tunnel-port",
                             str(tunnel), "--admin-port", str(admin), "--threads", "1", "--log-level", "info",
                             "--central", f"eu-central=http://127.0.0.1:{backend_port}/v1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=tempfile.TemporaryFile())
    wait_port(port)
    time.sleep(1.5)  # the central directory's first model refresh
    return proc, port


def h2load(port, body_file, count):
    return subprocess.run(["h2load", "-n", str(count), "-c", "1", "-m", "1", "-d", body_file, "-H",
                           "content-type: application/json", f"http://127.0.0.1:{port}/v1/chat/completions"],
                          capture_output=True, text=True).stdout


def split(pid, port, body_file, count):
    """Medians (µs) of request read → backend write and backend read → first client write."""
    h2load(port, body_file, 200)  # warm-up
    with tempfile.NamedTemporaryFile(suffix=".trace") as out:
        pids = ",".join(map(str, descendants(pid)))  # nghttpx relays in a child process
        tracer = subprocess.Popen(["perf", "trace", "-p", pids, "-e", "read,write,writev", "-o", out.name],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        h2load(port, body_file, count)
        time.sleep(0.5)
        tracer.send_signal(2)
        tracer.wait(10)
        calls = []
        for line in open(out.name, errors="replace"):
            if m := CALL.match(line):
                start_ms, took = float(m[1]), float(m[2])
                calls.append((start_ms, start_ms + took, m[3], int(m[4]), int(m[5])))
    request = max(len(BODY) // 2, 64)  # the request's HEADERS + DATA read: ~140 bytes on both relays

    def fd_of(predicate):
        fds = [c[3] for c in calls if predicate(c)]
        return max(set(fds), key=fds.count)

    client = fd_of(lambda c: c[2] == "read" and request < c[4] < 400)
    backend = fd_of(lambda c: c[2] != "read" and c[3] != client and c[3] != 2 and c[4] > 200)
    to_backend, to_client = [], []
    for i, c in enumerate(calls):
        after = (x for x in calls[i + 1:] if x[2] != "read")
        if c[2] == "read" and c[3] == client and request < c[4] < 400:
            if nxt := next((x for x in after if x[3] == backend), None):
                to_backend.append((nxt[0] - c[1]) * 1000)
        elif c[2] == "read" and c[3] == backend and c[4] > 0:
            if nxt := next((x for x in after if x[3] == client), None):
                to_client.append((nxt[0] - c[1]) * 1000)
    return statistics.median(to_backend), statistics.median(to_client), len(to_backend)


def rate(bin_dir, pid, port, rate_per_s, seconds=5):
    """Syscalls per stream (strace -c -f) and, in an untraced run, the relay's CPU µs per stream."""
    load = [os.path.join(bin_dir, "fleet-load"), "--target", f"127.0.0.1:{port}", "--rate", str(rate_per_s),
            "--duration", str(seconds), "--connections", "16"]
    subprocess.run([os.path.join(bin_dir, "fleet-load"), "--target", f"127.0.0.1:{port}", "--rate", "0", "--count",
                    "50"], capture_output=True)
    before = cpu_seconds(pid)
    subprocess.run(load, capture_output=True, check=True)
    cpu_us = (cpu_seconds(pid) - before) / (rate_per_s * seconds) * 1e6
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        pids = [arg for p in descendants(pid) for arg in ("-p", str(p))]  # nghttpx relays in a child process
        tracer = subprocess.Popen(["strace", "-c", "-f", *pids, "-o", out.name],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        subprocess.run(load, capture_output=True, check=True)
        tracer.send_signal(2)
        tracer.wait(10)
        counts = {}
        for line in open(out.name):
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                counts[fields[-1]] = int(fields[3])
    streams = rate_per_s * seconds
    return cpu_us, {name: n / streams for name, n in counts.items() if n / streams >= 0.05}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--backend", choices=["nginx", "python"], default="nginx")
    parser.add_argument("--mode", choices=["split", "rate"], default="split")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--count", type=int, default=100, help="sequential streams of the split")
    args = parser.parse_args()
    backend_port = free_port()
    if args.backend == "nginx":
        backend, root = static_backend.start(backend_port)
    else:
        backend = start([PY, os.path.join(ROOT, "LoadTests", "burst_backend.py"), "--port", str(backend_port)])
    wait_port(backend_port)
    body = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    body.write(BODY)
    body.close()
    try:
        for name in ("nghttpx", "central"):
            if name == "nghttpx":
                port = free_port()
                proc = start_nghttpx(port, backend_port)
            else:
                proc, port = start_gateway(args.bin, backend_port)
            try:
                if args.mode == "split":
                    to_backend, to_client, n = split(proc.pid, port, body.name, args.count)
                    print(f"{name}: request read → backend write p50 {to_backend:.1f} µs; backend read → first client "
                          f"write p50 {to_client:.1f} µs ({n} streams, {args.backend} backend, under perf trace)")
                else:
                    cpu_us, per_stream = rate(args.bin, proc.pid, port, args.rate)
                    calls = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_stream.items(), key=lambda kv: -kv[1]))
                    print(f"{name} at {args.rate}/s ({args.backend} backend): {cpu_us:.0f} CPU µs a stream; "
                          f"syscalls a stream: {calls}")
            finally:
                stop(proc)
    finally:
        os.unlink(body.name)
        stop(backend)
        if args.backend == "nginx":
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
