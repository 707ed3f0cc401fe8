#!/usr/bin/env python3
"""A car that answers 200 and then says nothing, beside an honest one (helper-72's "blackhole").

    ~/.cache/fleetgate/venv/bin/python LoadTests/silent_car.py --bin <dir with fleetgate and fleet-agent> \
        [--requests 120] [--concurrency 4] [--late]

The silent car advertises an AI5 at 5,000 tokens/s and 64 slots, so the scheduler likes it; each job it
gets waits out the 15 s first-token timeout unless a hedge rescues it. Prints how many requests took
over 5 s and the latency percentiles. With --late the silent car joins after the honest one has answered
four requests (a new car in a fleet already serving: slow start's case); without it both are new. Loopback
only; stops by itself.
"""
import argparse, asyncio, json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request

import h2.config, h2.connection, h2.events, httpx

from bench_common import issue_token, start_token_gateway, stop as stop_process


def silent_car(port, token, stop):
    """Dials the tunnel, says hello on the gateway's status stream, answers every job 200 and nothing more."""
    sock = socket.create_connection(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    hello = {"v": 1, "type": "hello", "vehicle_id": "silent", "credential": token, "hardware": "ai5",
             "region": "eu-central", "slots": 64, "queue": 0,
             "models": [{"id": "fleet-8b", "decode_tps": 5000, "prefill_tps": 500000}],
             "policy": {"only_while_plugged": False, "min_charge_percent": 0},
             "state": {"plugged_in": True, "charge_percent": 100, "link": "ethernet", "slots_free": 64}}
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                path = dict(event.headers).get(":path", "")
                if path == "/fleet/v1/status":
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/x-ndjson")])
                    conn.send_data(event.stream_id, (json.dumps(hello) + "\n").encode())
                elif path.startswith("/v1/"):
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "text/event-stream")])
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        sock.sendall(conn.data_to_send())


async def drive(port, requests, concurrency):
    latencies, statuses = [], []
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(http2=True, http1=False, timeout=60) as client:
        async def one(i):
            async with limit:
                start = time.time()
                response = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={
                    "model": "fleet-8b", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 8})
                latencies.append(time.time() - start)
                statuses.append(response.status_code)
        await asyncio.gather(*(one(i) for i in range(requests)))
    return sorted(latencies), statuses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--late", action="store_true",
                        help="the silent car joins a fleet whose honest car has already answered (slow start's case)")
    args = parser.parse_args()
    env = dict(os.environ, FLEETGATE_FLEET_SECRET="0123456789abcdef-secret")
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    gateway, ports = start_token_gateway(args.bin, env, log.name)
    processes, stop = [gateway], threading.Event()
    try:
        token = lambda vid: issue_token(args.bin, env, vid)
        processes.append(subprocess.Popen(
            [f"{args.bin}/fleet-agent", "run", "--gateway", f"127.0.0.1:{ports['tunnel']}", "--vehicle-id", "honest",
             "--region", "eu-central", "--hardware", "ai5"], env=dict(env, FLEET_AGENT_TOKEN=token("honest")),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if args.late:
            # The fleet has been serving: the honest car has answered before the silent one connects.
            time.sleep(2)
            asyncio.run(drive(ports["client"], 4, 1))
        threading.Thread(target=silent_car, args=(ports["tunnel"], token("silent"), stop), daemon=True).start()
        time.sleep(2)
        start = time.time()
        latencies, statuses = asyncio.run(drive(ports["client"], args.requests, args.concurrency))
        n = len(latencies)
        print(f"{args.bin}: {statuses.count(200)}/{n} ok, over 5 s: {sum(1 for x in latencies if x > 5)}, "
              f"p50 {latencies[n // 2]:.2f} s, p90 {latencies[n * 9 // 10]:.2f} s, max {latencies[-1]:.1f} s, "
              f"wall {time.time() - start:.0f} s")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/metrics", timeout=10).read().decode()
        print("  over 0.3 s:", sum(1 for x in latencies if x > 0.3), "; statuses:",
              {s: statuses.count(s) for s in sorted(set(statuses))}, ";",
              ", ".join(line for line in metrics.splitlines() if line.startswith("fleet_hedges_total")))
    finally:
        stop.set()
        for process in reversed(processes):
            stop_process(process)
        os.unlink(log.name)


if __name__ == "__main__":
    sys.exit(main())
