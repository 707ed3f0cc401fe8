#!/usr/bin/env python3
"""Gateway memory per car tunnel (issue #21's capacity arithmetic): starts `fleetgate serve`, opens N
tunnels that each answer the status stream with a verified hello (Python h2 in one process, the car
side only), and reports the gateway's resident memory before and after, per tunnel.

    python3 LoadTests/bench_tunnels.py --tunnels 2000 [--bin .build/release/fleetgate]
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import free_port  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

SECRET = "bench-fleet-secret-0123456789"


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def token(vid, region):
    payload = json.dumps({"vid": vid, "regions": [region], "exp": int(time.time()) + 3600},
                         separators=(",", ":")).encode()
    mac = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()
    return f"fgv1.{b64url(payload)}.{b64url(mac)}"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def get(port, path):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[-1].decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tunnels", type=int, default=1000)
    ap.add_argument("--bin", default=".build/debug/fleetgate")
    args = ap.parse_args()
    client, tunnel, admin = free_port(), free_port(), free_port()
    # Token tunnels (the default is vehicle certificates, which need the tunnel's TLS files).
    env = dict(os.environ, FLEETGATE_FLEET_SECRET=SECRET, FLEETGATE_CACHE="/nonexistent",
               FLEETGATE_TUNNEL_AUTH="token")
    log = tempfile.NamedTemporaryFile(prefix="bench_tunnels-", suffix=".log", delete=False)
    gw = subprocess.Popen([args.bin, "serve", "--client-port", str(client), "--tunnel-port", str(tunnel),
                           "--admin-port", str(admin), "--threads", "1", "--log-level", "error"],
                          env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(200):
            if gw.poll() is not None:
                sys.exit(f"the gateway exited with {gw.returncode} at start:\n" + open(log.name).read()[-2000:])
            try:
                if '"ready":true' in get(admin, "/readyz"):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            sys.exit(f"the gateway was not ready within 20 s; its log: {log.name}")
        time.sleep(1)
        before = rss_kib(gw.pid)
        sel = selectors.DefaultSelector()
        conns = []
        for i in range(args.tunnels):
            s = socket.create_connection(("127.0.0.1", tunnel))
            s.setblocking(False)
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
            c.initiate_connection()
            s.sendall(c.data_to_send())
            state = {"sock": s, "conn": c, "vid": f"bench-{i}"}
            sel.register(s, selectors.EVENT_READ, state)
            conns.append(state)
        deadline = time.time() + 120
        while time.time() < deadline:
            for key, _ in sel.select(timeout=0.5):
                st = key.data
                try:
                    data = st["sock"].recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(st["sock"])
                    continue
                for ev in st["conn"].receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived) and dict(ev.headers).get(":path") == "/fleet/v1/status":
                        hello = {"v": 1, "type": "hello", "vehicle_id": st["vid"], "credential": token(st["vid"], "eu-central"),
                                 "hardware": "ai5", "region": "eu-central", "slots": 4,
                                 "models": [{"id": "fleet-8b", "decode_tps": 50, "prefill_tps": 1800}],
                                 "policy": {"only_while_plugged": False, "min_charge_percent": 0},
                                 "state": {"plugged_in": True, "charge_percent": 80, "link": "wifi", "slots_free": 4}}
                        st["conn"].send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/x-ndjson")])
                        st["conn"].send_data(ev.stream_id, (json.dumps(hello) + "\n").encode())
                    elif isinstance(ev, h2.events.PingReceived):
                        pass
                out = st["conn"].data_to_send()
                if out:
                    st["sock"].sendall(out)
            if f'"cars":{args.tunnels}' in get(admin, "/readyz"):
                break
        time.sleep(2)
        after = rss_kib(gw.pid)
        cars = get(admin, "/readyz")
        print(f"bench_tunnels: {args.bin}, {args.tunnels} tunnels ({cars.strip()}): RSS {before} KiB -> {after} KiB, "
              f"{(after - before) / args.tunnels:.1f} KiB per tunnel")
    finally:
        gw.terminate()
        gw.wait()


if __name__ == "__main__":
    main()
