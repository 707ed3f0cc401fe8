#!/usr/bin/env python3
"""Single-stream TTFT p50 of gateway builds side by side: central path, alternating rounds.

Usage: bench_ttft_pair.py DIR[,DIR...] [ROUNDS [COUNT]]   (each DIR a release build's directory; the first's
fleet-load drives all). nghttpx in front of the same backend is measured in the same rounds. BACKEND=nginx
uses static_backend.py instead of burst_backend.py. One round of COUNT sequential streams per build and
round, the order rotated; the median of the rounds' p50s, and every round's, since one round moves by
±15 % on this shared machine.
"""
import json, os, subprocess, sys, time, statistics
from bench_common import ROOT, free_port, wait_port, start, stop
PY = os.environ.get("FLEETGATE_PYTHON", "python3")
dirs = sys.argv[1].split(",")
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
backend_kind = os.environ.get("BACKEND", "python")
bp = free_port()
if backend_kind == "nginx":
    import static_backend
    backend, _ = static_backend.start(bp)
else:
    backend = subprocess.Popen([PY, os.path.join(ROOT, "LoadTests", "burst_backend.py"), "--port", str(bp)], stdout=subprocess.DEVNULL)
wait_port(bp)
np_ = free_port()
ngx = start(["nghttpx", "--conf=/dev/null", "--workers=1", f"--frontend=127.0.0.1,{np_};no-tls",
             f"--backend=127.0.0.1,{bp};;proto=http/1.1", "--backend-keep-alive-timeout=60s",
             "--accesslog-file=/dev/null", "--errorlog-file=/dev/null"])
wait_port(np_)
env = dict(os.environ, FLEETGATE_FLEET_SECRET="bench-secret-0123456789abcdef", FLEETGATE_TUNNEL_AUTH="token")
gws = []
for d in dirs:
    port, tunnel, admin = free_port(), free_port(), free_port()
    p = subprocess.Popen([os.path.join(d, "fleetgate"), "serve", "--client-port", str(port), "--tunnel-port", str(tunnel),
                          "--admin-port", str(admin), "--threads", "1", "--log-level", "info",
                          "--central", f"eu-central=http://127.0.0.1:{bp}/v1"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(admin)
    gws.append((d, port, p))
load = os.path.join(dirs[0], "fleet-load")
def run(port, n):
    out = subprocess.run([load, "--target", f"127.0.0.1:{port}", "--rate", "0", "--count", str(n)], capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])
time.sleep(2)
targets = [("nghttpx", np_)] + [(d, port) for d, port, _ in gws]
for name, port in targets:
    for _ in range(20):
        if run(port, 5)["ok"] == 5: break
        time.sleep(0.5)
    run(port, 100)
res = {name: [] for name, _ in targets}
for r in range(rounds):
    order = targets[r % len(targets):] + targets[:r % len(targets)]
    for name, port in order:
        res[name].append(run(port, count)["ttft_p50_ms"])
for name, v in res.items():
    print(f"{name}: TTFT p50 median {statistics.median(v):.3f} ms  rounds {' '.join(f'{x:.3f}' for x in v)}")
for _, _, p in gws: p.kill()
stop(ngx); stop(backend)
