#!/usr/bin/env python3
"""Single-stream TTFT p50 of gateway builds side by side: central path, alternating rounds.

Usage: bench_ttft_pair.py DIR[,DIR...] [ROUNDS [COUNT]]   (each DIR a release build's directory; the first's
fleet-load drives all). nghttpx in front of the same backend is measured in the same rounds. BACKEND=nginx
uses static_backend.py instead of burst_backend.py. One round of COUNT sequential streams per build and
round, the order rotated; the median of the rounds' p50s, and every round's, since one round moves by
±15 % on this shared machine.
"""
import json, os, subprocess, sys, time, statistics
from bench_common import ROOT, free_port, start_nghttpx, stop, wait_port
from bench_gateway import Gateway
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
ngx = start_nghttpx(np_, bp)
gws = [Gateway(d, d, bp, False, "info") for d in dirs]
load = os.path.join(dirs[0], "fleet-load")
def run(port, n):
    out = subprocess.run([load, "--target", f"127.0.0.1:{port}", "--rate", "0", "--count", str(n)], capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])
targets = [("nghttpx", np_)] + [(g.name, g.port) for g in gws]
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
for g in gws: g.stop()
stop(ngx); stop(backend)
