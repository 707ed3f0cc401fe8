#!/usr/bin/env python3
"""Clients that read slowly against the car slots they hold (helper-85), beside an honest client.

    ~/.cache/fleetgate/venv/bin/python LoadTests/slow_clients.py --bin <dir with fleetgate and fleet-agent> \
        [--slots 2] [--slow 2] [--max-tokens 1500] [--slowdown 1] [--decode-tps 0] [--seconds 45] [--protocol h2|h1]

Starts `fleetgate serve` and one `fleet-agent run` (the synthetic engine, an AI5 with --slots slots and the
engine's hidden --slowdown: an AI5 decodes 50 tokens/s a stream, 135 over its slots). One
attacker connection announces a zero stream window and opens --slow streaming completions of --max-tokens
each, then gives each stream one byte of window every 20 s: progress just often enough for the stall timeout
(60 s). With --protocol h1 the attacker is --slow HTTP/1.1 connections with 4 KiB receive buffers, each reading
a byte every 20 s (which does not reset HTTP/1.1's stall timeout: after 60 s the gateway closes them). Meanwhile an honest client sends completions of 16 tokens, two at a time, for --seconds. Prints the
honest client's statuses and when its first 200 came, then, at the end, `fleet_active_streams`,
`fleet_buffered_bytes` and the gateway's RSS. Loopback only; stops by itself.
"""
import argparse, asyncio, json, os, socket, struct, subprocess, sys, tempfile, threading, time, urllib.request

import httpx

from bench_common import issue_token, start_token_gateway, stop as stop_process

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    name, value = name.encode(), value.encode()
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def attacker(port, streams, max_tokens, stop):
    """A zero-window connection with `streams` open completions, each given one byte of window every 20 s."""
    body = json.dumps({"model": "fleet-8b", "stream": True, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "Tell me a long story"}]}).encode()
    connection = socket.create_connection(("127.0.0.1", port))
    settings = frame(0x4, 0, 0, struct.pack(">HI", 4, 0))  # SETTINGS_INITIAL_WINDOW_SIZE = 0
    heads = b""
    for i in range(streams):
        fields = [(":method", "POST"), (":scheme", "http"), (":path", "/v1/chat/completions"),
                  (":authority", f"127.0.0.1:{port}"), ("content-type", "application/json"),
                  ("content-length", str(len(body)))]
        heads += frame(0x1, 0x4, 1 + 2 * i, b"".join(literal(n, v) for n, v in fields)) + frame(0x0, 0x1, 1 + 2 * i, body)
    connection.sendall(PREFACE + settings + frame(0x4, 0x1, 0) + heads)
    connection.settimeout(0.5)
    next_dribble = time.time() + 20
    while not stop.is_set():
        try:
            if not connection.recv(65536):
                return
        except socket.timeout:
            pass
        if time.time() >= next_dribble:
            connection.sendall(b"".join(frame(0x8, 0, 1 + 2 * i, struct.pack(">I", 1)) for i in range(streams)))
            next_dribble += 20
    connection.close()


def attacker_h1(port, streams, max_tokens, stop):
    """`streams` HTTP/1.1 connections (4 KiB receive buffers), each with one streaming completion, reading one
    byte every 20 s."""
    body = json.dumps({"model": "fleet-8b", "stream": True, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "Tell me a long story"}]}).encode()
    connections = []
    for _ in range(streams):
        connection = socket.socket()
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        connection.connect(("127.0.0.1", port))
        connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                           + b"content-length: %d\r\n\r\n" % len(body) + body)
        connection.settimeout(0.5)
        connections.append(connection)
    next_dribble = time.time() + 20
    while not stop.wait(0.5):
        if time.time() >= next_dribble:
            for connection in connections:
                try:
                    connection.recv(1)
                except OSError:
                    pass
            next_dribble += 20
    for connection in connections:
        connection.close()


async def honest(port, seconds, statuses):
    async with httpx.AsyncClient(http2=True, http1=False, timeout=30) as client:
        end = time.time() + seconds

        async def worker(w):
            i = 0
            while time.time() < end:
                response = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={
                    "model": "fleet-8b", "messages": [{"role": "user", "content": f"q{w}-{i}"}], "max_tokens": 16})
                statuses.append((time.time(), response.status_code))
                if response.status_code != 200:
                    await asyncio.sleep(0.2)
                i += 1
        await asyncio.gather(worker(0), worker(1))


def metric(admin, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10).read().decode()
    return [line for line in text.splitlines() if line.startswith(name)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--slow", type=int, default=2, help="the attacker's streams")
    parser.add_argument("--max-tokens", type=int, default=1500, help="each slow stream's max_tokens")
    parser.add_argument("--slowdown", type=float, default=1, help="the synthetic engine's hidden slowdown (1 or more)")
    parser.add_argument("--decode-tps", type=float, default=0,
                        help="the car's decode tokens/s a stream (0: the AI5 profile's 50); e.g. 1000 for answers past "
                             "the ~1.6 MB a loopback socket takes in, which is where an HTTP/1.1 reader starts to hold")
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--protocol", choices=("h2", "h1"), default="h2",
                        help="the attacker's: one HTTP/2 connection with --slow streams, or --slow HTTP/1.1 connections")
    args = parser.parse_args()
    env = dict(os.environ, FLEETGATE_FLEET_SECRET="0123456789abcdef-secret")
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    gateway, ports = start_token_gateway(args.bin, env, log.name)
    processes, stop = [gateway], threading.Event()
    try:
        token = issue_token(args.bin, env, "car-1")
        processes.append(subprocess.Popen(
            [f"{args.bin}/fleet-agent", "run", "--gateway", f"127.0.0.1:{ports['tunnel']}", "--vehicle-id", "car-1",
             "--region", "eu-central", "--hardware", "ai5"]
            + (["--decode-tps", str(args.decode_tps)] if args.decode_tps else []),
            env=dict(env, FLEET_AGENT_TOKEN=token, FLEET_AGENT_ENGINE_SLOTS=str(args.slots),
                     FLEET_AGENT_ENGINE_SLOWDOWN=str(args.slowdown)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(2)
        threading.Thread(target=attacker if args.protocol == "h2" else attacker_h1, args=(ports["client"], args.slow, args.max_tokens, stop), daemon=True).start()
        time.sleep(0.5)
        start = time.time()
        statuses = []
        asyncio.run(honest(ports["client"], args.seconds, statuses))
        ok = [t - start for t, s in statuses if s == 200]
        codes = {s: sum(1 for _, c in statuses if c == s) for s in sorted({c for _, c in statuses})}
        rss = int(next(l for l in open(f"/proc/{gateway.pid}/status") if l.startswith("VmRSS")).split()[1]) // 1024
        print(f"{args.bin}: slots {args.slots}, slow {args.protocol} streams {args.slow} × {args.max_tokens} tokens, "
              f"slowdown {args.slowdown}, decode {args.decode_tps or 50:.0f} tokens/s, "
              f"{args.seconds:.0f} s: honest {codes}, first 200 at "
              + (f"{ok[0]:.1f} s" if ok else "never")
              + f"; {'; '.join(metric(ports['admin'], 'fleet_active_streams') + metric(ports['admin'], 'fleet_buffered_bytes'))}"
              + f"; gateway RSS {rss} MiB")
    finally:
        stop.set()
        for process in reversed(processes):
            stop_process(process)
        os.unlink(log.name)


if __name__ == "__main__":
    sys.exit(main())
