#!/usr/bin/env python3
"""Single-stream TTFT through nghttpx and the gateway's central path, by where the processes run (issue #19).

    FLEETGATE_PYTHON=~/.cache/fleetgate/venv/bin/python python3 LoadTests/ttft_placement.py --bin DIR \
        [--rounds 3] [--count 500] [--placements free,split,same,relaysplit] [--log-level info]

One nginx (static_backend.py, the 32-chunk stream), one nghttpx (one worker) and one `fleetgate serve --threads 1`
with nginx as central capacity; per round and placement, `fleet-load --rate 0 --count N` (sequential streams)
against each relay. Placements (taskset, every thread): `free` (as bench_gateway.py runs them), `split` (the
client alone on CPU 0, relays and nginx on CPU 1), `same` (everything on CPU 0), `relaysplit` (client and nginx
on CPU 0, the relays on CPU 1). Prints the medians over rounds of each relay's TTFT p50 and the gap.

helper-92 (session 35) found the gap to nghttpx moves with placement: about 90 µs with the client on its own
core, 140–200 µs when it shares one with the gateway, which keeps the CPU for ~70 µs after its first write
(the rest of the answer, the audit line) where nghttpx keeps it ~20 µs. Loopback only; stops by itself.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import static_backend
from bench_common import descendants, free_port, start_nghttpx, stop, wait_port

PLACEMENTS = {  # name: (relays' CPUs, nginx's CPUs, the client's CPUs or None)
    "free": ("0-1", "0-1", None), "split": ("1", "1", "0"), "same": ("0", "0", "0"), "relaysplit": ("1", "0", "0"),
}


def pin(pids, cpus):
    for pid in pids:
        for thread in os.listdir(f"/proc/{pid}/task"):
            subprocess.run(["taskset", "-pc", cpus, thread], capture_output=True)


def sequential(bin_dir, port, count, cpus):
    command = [os.path.join(bin_dir, "fleet-load"), "--target", f"127.0.0.1:{port}", "--rate", "0", "--count", str(count)]
    out = subprocess.run((["taskset", "-c", cpus] if cpus else []) + command,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="a release build's directory with fleetgate and fleet-load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--placements", default="free,split,same,relaysplit")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    placements = args.placements.split(",")
    backend_port, nghttpx_port, port, tunnel, admin = (free_port() for _ in range(5))
    nginx, root = static_backend.start(backend_port)
    log = tempfile.TemporaryFile()
    relays = {}
    try:
        wait_port(backend_port)
        relays["nghttpx"] = (start_nghttpx(nghttpx_port, backend_port), nghttpx_port)
        env = dict(os.environ, FLEETGATE_FLEET_SECRET="bench-secret-0123456789abcdef", FLEETGATE_TUNNEL_AUTH="token")
        gateway = subprocess.Popen(
            [os.path.join(args.bin, "fleetgate"), "serve", "--client-port", str(port), "--tunnel-port", str(tunnel),
             "--admin-port", str(admin), "--threads", "1", "--log-level", args.log_level,
             "--central", f"eu-central=http://127.0.0.1:{backend_port}/v1"], env=env, stdout=log, stderr=log)
        relays["central"] = (gateway, port)
        wait_port(port)
        time.sleep(1.5)  # the central directory's first model refresh
        for _, relay_port in relays.values():
            sequential(args.bin, relay_port, 50, None)  # warm-up
        relay_pids = [pid for process, _ in relays.values() for pid in descendants(process.pid)]
        ttft = {}
        for round_ in range(args.rounds):
            for placement in placements:
                relay_cpus, nginx_cpus, client_cpus = PLACEMENTS[placement]
                pin(relay_pids, relay_cpus)
                pin(descendants(nginx.pid), nginx_cpus)
                for name, (_, relay_port) in relays.items():
                    result = sequential(args.bin, relay_port, args.count, client_cpus)
                    ttft.setdefault((placement, name), []).append(result["ttft_p50_ms"] * 1000)
            print(f"round {round_ + 1} done", flush=True)
        print(f"TTFT p50, medians of {args.rounds} rounds × {args.count} sequential streams, µs (log level {args.log_level}):")
        print("| placement | nghttpx | central | gap |\n|---|---|---|---|")
        for placement in placements:
            a, b = (statistics.median(ttft[(placement, n)]) for n in ("nghttpx", "central"))
            print(f"| {placement} | {a:.0f} | {b:.0f} | {b - a:+.0f} |")
    finally:
        for process, _ in relays.values():
            stop(process)
        stop(nginx)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
