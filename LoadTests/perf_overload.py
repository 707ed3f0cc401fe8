#!/usr/bin/env python3
"""Where a one-loop gateway spends its time at FACTOR × its capacity, and why it refuses (issue #19).

The set-up of `bench_overload.py --pin`: nginx (`static_backend.py`) as central capacity, the gateway
(`fleetgate serve --threads 1`, info-level logging) on CPU 0, the backend and h2load on CPU 1. Measures the
closed-loop capacity (16 connections × 8 streams, 20,000 requests), then runs h2load open loop at FACTOR ×
it for --seconds (32 connections, -m 64); with --perf OUT, `perf record -F 2000 -g` on the gateway for 5 s
in the middle of it. Prints capacity, offered, admitted (and % of capacity) and the 503s, then the gateway's
`fleet_requests_shed_total` by reason, scraped from its admin port after the run — `zone_busy` are the
refusals of a zone without room (after routing, or on the head once the zone is marked), the others the
loop's own on the header block.

Usage: python3 LoadTests/perf_overload.py BIN_DIR [--factor 2] [--seconds 10] [--perf OUT]
Then e.g. `perf report -i OUT --no-children -g none --sort sym`, or `perf script -i OUT -F ip,sym` for the
share of samples whose stack holds a function.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_overload as bo  # noqa: E402
import static_backend  # noqa: E402
from bench_common import free_port, pin, stop, wait_port  # noqa: E402
from bench_gateway import Gateway  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bin", help="a release build's directory with fleetgate")
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--perf", metavar="OUT", help="perf record the gateway for 5 s into OUT")
    args = parser.parse_args()
    bo.PIN_CLIENT[:] = ["taskset", "-c", "1"]
    backend_port = free_port()
    backend, root = static_backend.start(backend_port)
    wait_port(backend_port)
    pin(backend.pid, {1})
    work = tempfile.mkdtemp(prefix="perf-overload-")
    body = os.path.join(work, "body.json")
    with open(body, "w") as f:
        f.write(bo.BODY)
    gateway = Gateway("central", args.bin, backend_port, False, "info", [])
    try:
        pin(gateway.proc.pid, {0})
        for _ in range(100):  # central's models are known once its directory has listed them
            if bo.h2load(["-n", "1", "-c", "1"], gateway.port, body)["2xx"] == 1:
                break
            time.sleep(0.2)
        bo.h2load(["-n", "2000", "-c", "16"], gateway.port, body)  # warm-up
        cap = bo.h2load(["-n", "20000", "-c", "16", "-m", "8"], gateway.port, body)
        capacity = cap["rate"] * cap["2xx"] / 20000
        offered = args.factor * capacity

        def record():
            time.sleep(max(0, args.seconds / 2 - 2.5))
            subprocess.run(["perf", "record", "-F", "2000", "-g", "-p", str(gateway.proc.pid), "-o", args.perf,
                            "--", "sleep", "5"], capture_output=True)

        recorder = threading.Thread(target=record) if args.perf else None
        if recorder:
            recorder.start()
        res = bo.h2load(["-c", "32", "-m", "64", "--rps", f"{offered / 32:.2f}", "-D", str(args.seconds)],
                        gateway.port, body)
        if recorder:
            recorder.join()
        admitted = res["2xx"] / args.seconds
        print(f"capacity {capacity:.0f}/s; offered {offered:.0f}/s; admitted {admitted:.0f}/s "
              f"({100 * admitted / capacity:.0f} %); 503 {res['5xx']}; lost {res['errored']} / {res['timeout']}")
        listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        for port in re.findall(r"127\.0\.0\.1:(\d+).*pid=%d," % gateway.proc.pid, listening):
            metrics = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/metrics"], capture_output=True,
                                     text=True).stdout
            for line in metrics.splitlines():
                if line.startswith("fleet_requests_shed_total"):
                    print(line)
    finally:
        gateway.stop()
        stop(backend)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
