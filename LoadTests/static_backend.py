#!/usr/bin/env python3
"""A backend that costs (almost) nothing: nginx serving `burst_backend.py`'s streamed answer as a file.

`burst_backend.py` is Python: ~0.45 ms of CPU a request, so at ~2,000 streams/s it, not the relay,
is what a closed-loop capacity run measures (session 9's "capacity 0.99× nghttpx" was that). nginx
answers the same 32-chunk SSE body (`content-length` instead of chunked framing) at tens of
thousands a second on one core, so the relay in front is the bottleneck. Streams only: nginx cannot
read the request's `stream` field, so every POST gets the streamed answer; `GET /v1/models` lists the
model.

Used by `bench_gateway.py --backend nginx`; by hand: `static_backend.py --port P` (runs until killed).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile

import burst_backend


def start(port, chunks=32, model="fleet-8b"):
    """Starts nginx (one worker) on 127.0.0.1:port; returns (process, its directory)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit("nginx is not installed: `apt-get install -y nginx-light` (benchmarks only; the tests do not need it)")
    root = tempfile.mkdtemp(prefix="fleetgate-static-backend-")
    os.chmod(root, 0o755)  # nginx's worker (nobody when started as root) reads the files
    os.makedirs(os.path.join(root, "www", "v1", "chat"))
    with open(os.path.join(root, "www", "v1", "chat", "completions"), "wb") as f:
        f.write(b"".join(burst_backend.stream_events(chunks, model)))
    with open(os.path.join(root, "www", "v1", "models"), "w") as f:
        json.dump({"object": "list", "data": [{"id": model, "object": "model"}]}, f)
    with open(os.path.join(root, "nginx.conf"), "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log stderr crit;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_buffer_size 64k;
  open_file_cache max=16;
  client_body_temp_path {root}/body;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {root}/www;
    location = /v1/models {{ default_type application/json; }}
    # A POST to a file is 405 in nginx's static module; answered as the GET of the same file.
    location / {{ default_type text/event-stream; error_page 405 =200 $uri; }}
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", os.path.join(root, "nginx.conf"), "-p", root],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--model", default="fleet-8b")
    args = parser.parse_args()
    proc, root = start(args.port, args.chunks, args.model)
    print(f"static backend (nginx) on 127.0.0.1:{args.port}, files in {root}", flush=True)
    # Stopped with SIGTERM (callgrind_steady.sh, bench_gateway.py): end as Ctrl-C does, so the files go too
    # (25 directories were left in /tmp by a day of profiles).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
