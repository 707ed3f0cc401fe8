#!/usr/bin/env python3
"""Where admitted streams wait past capacity (issue #19): the kernel queues of the gateway's sockets.

Usage: python3 LoadTests/overload_queues.py BIN_DIR RATE   (BIN_DIR: a release build's fleetgate and
fleet-load; RATE: open-loop streams/s, e.g. 2x the h2c capacity bench_gateway.py measured).
One `fleetgate serve --threads 1` in front of burst_backend.py as central; fleet-load at RATE for 5 s;
every 0.25 s `ss` sums, over established sockets, the gateway's client-side receive queue (requests
not yet read), its send queue, and the receive queue of its connections to the backend (answers not
yet read), with the gateway's shed counters. Prints fleet-load's result, then one tuple per sample:
(seconds, client Recv-Q bytes, client Send-Q bytes, backend Recv-Q bytes, shed counters).
"""
import os
import subprocess
import sys
import time

from bench_common import ROOT, free_port, stop, wait_port

bin_dir, rate = sys.argv[1], float(sys.argv[2])
PY = os.environ.get("FLEETGATE_PYTHON", "python3")
bport, cport, tport, aport = free_port(), free_port(), free_port(), free_port()
backend = subprocess.Popen([PY, os.path.join(ROOT, "LoadTests", "burst_backend.py"), "--port", str(bport)], stdout=subprocess.DEVNULL)
wait_port(bport)
env = dict(os.environ, FLEETGATE_FLEET_SECRET="bench-secret-0123456789abcdef", FLEETGATE_TUNNEL_AUTH="token")
gw = subprocess.Popen([f"{bin_dir}/fleetgate", "serve", "--client-port", str(cport), "--tunnel-port", str(tport), "--admin-port", str(aport),
                       "--threads", "1", "--log-level", "info", "--central", f"eu-central=http://127.0.0.1:{bport}/v1"],
                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_port(cport); time.sleep(1.5)
subprocess.run([f"{bin_dir}/fleet-load", "--target", f"127.0.0.1:{cport}", "--rate", "0", "--count", "50"], capture_output=True)
load = subprocess.Popen([f"{bin_dir}/fleet-load", "--target", f"127.0.0.1:{cport}", "--rate", str(rate), "--duration", "5", "--connections", "16"],
                        stdout=subprocess.PIPE, text=True)
samples = []
t0 = time.time()
while load.poll() is None and time.time() - t0 < 40:
    out = subprocess.run(["ss", "-tnH", "state", "established"], capture_output=True, text=True).stdout
    client_rq = backend_rq = client_sq = 0
    for line in out.splitlines():
        f = line.split()
        rq, sq, local, peer = int(f[0]), int(f[1]), f[2], f[3]
        if local.endswith(f":{cport}"): client_rq += rq; client_sq += sq   # requests not yet read by the gateway / answers not yet read by the client
        if peer.endswith(f":{bport}"): backend_rq += rq                     # backend answers not yet read by the gateway
    lag = ""
    try:
        m = subprocess.run(["curl", "-s", f"http://127.0.0.1:{aport}/metrics"], capture_output=True, text=True, timeout=2).stdout
        lag = " ".join(l for l in m.splitlines() if ("lag" in l or "shed_total" in l) and not l.startswith("#"))
    except Exception:
        pass
    samples.append((round(time.time() - t0, 2), client_rq, client_sq, backend_rq, lag))
    time.sleep(0.25)
print(load.stdout.read().strip().splitlines()[-1])
for s in samples: print(s)
stop(gw); stop(backend)
