#!/usr/bin/env python3
"""Gateway cost against nghttpx on a *bursting* backend: the benchmark of issue #19.

One fast OpenAI-compatible backend (`burst_backend.py`: answers at once, 32 SSE chunks back to back,
HTTP/1.1) behind, in one run with the order rotated each round:
  direct        app → backend
  nghttpx       app → nghttpx (1 worker, h2c front) → backend
  central       app → fleetgate serve --threads 1 (backend as central capacity for eu-central) → backend
  car           app → fleetgate serve --threads 1 → tunnel → fleet-agent --engine openai-local → backend
  *-before      the same two with a second build (--baseline-bin), e.g. the previous release

Workloads per path (production settings: info-level logging with the audit line):
  single        sequential streams: TTFT p50 and whole-stream p50 (fleet-load, h2c)
  nonstream     sequential `stream: false` requests: p50 (h2load -c 1 -m 1, one connection; h2c, direct h1)
  open R/s      open-loop streams at each --rates value for --duration s: ok/failed, TTFT p50/p99,
                relay CPU per stream (µs; the gateway's process only, the agent's separately)
  capacity      closed loop, 16 connections (h2load), h2c and HTTP/1.1: streams/s, cores, CPU-ms each
CPU is read from /proc/PID/task/*/schedstat before and after each load.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.request

import static_backend
from bench_common import ROOT, cpu_seconds, start_nghttpx, free_port, median, percentile, release_build, start, stop, wait_port

PY = os.environ.get("FLEETGATE_PYTHON", "python3")
SECRET = "bench-secret-0123456789abcdef"
BODY_STREAM = {"model": "fleet-8b", "max_tokens": 32, "stream": True,
               "messages": [{"role": "user", "content": "hello"}]}
BODY_PLAIN = {**BODY_STREAM, "stream": False}


def wait_ready(admin, key, want, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz")).get(key) == want:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"gateway on admin port {admin} never reported {key}={want}")


class Gateway:
    """A fleetgate serve (+ its agent for the car path) built from `bin_dir`."""

    def __init__(self, name, bin_dir, backend, car, log_level, extra_env=()):
        self.name, self.port, self.agent = name, free_port(), None
        # Issue #20: token cars (benchmarks); by environment, which a baseline binary without the key ignores.
        env = dict(os.environ, FLEETGATE_FLEET_SECRET=SECRET, FLEETGATE_TUNNEL_AUTH="token")
        env.update(kv.split("=", 1) for kv in extra_env)
        tunnel, admin = free_port(), free_port()
        args = [os.path.join(bin_dir, "fleetgate"), "serve", "--client-port", str(self.port), "--tunnel-port",
                str(tunnel), "--admin-port", str(admin), "--threads", "1", "--log-level", log_level]
        if not car:
            args += ["--central", f"eu-central=http://127.0.0.1:{backend}/v1"]
        # The audit line goes where production sends it; a pipe the bench never reads would block.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log)
        wait_port(self.port)
        if car:
            token = subprocess.run([os.path.join(bin_dir, "fleetgate"), "token", "issue", "--vehicle-id", "bench-car",
                                    "--region", "eu-central"], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip()
            self.agent = start([os.path.join(bin_dir, "fleet-agent"), "run", "--gateway", f"127.0.0.1:{tunnel}",
                                "--vehicle-id", "bench-car", "--region", "eu-central", "--hardware", "ai5",
                                "--engine", "openai-local", "--upstream", f"http://127.0.0.1:{backend}/v1",
                                "--slots", "64", "--log-level", "warning"], dict(os.environ, FLEET_AGENT_TOKEN=token))
            wait_ready(admin, "cars", 1)
        else:
            time.sleep(1.5)  # the first model refresh of the central directory

    def stop(self):
        for proc in (self.agent, self.proc):
            if proc:
                stop(proc)
        if os.environ.get("BENCH_KEEP_LOG"):  # the gateway's log (audit lines), kept as FILE.NAME after the run
            self.log.seek(0)
            with open(f"{os.environ['BENCH_KEEP_LOG']}.{self.name}", "wb") as f:
                f.write(self.log.read())


def fleet_load(bin_dir, port, args):
    out = subprocess.run([os.path.join(bin_dir, "fleet-load"), "--target", f"127.0.0.1:{port}", *args],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def client_cpu_seconds():
    """CPU seconds of this script's finished children (fleet-load runs to completion in each call)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sequential(port, count, h2, body):
    """p50/p99 of `count` sequential requests on one connection (h2load -c 1 -m 1, per-request log, ms).

    Not curl: curl 7.88 sends only the first of several POSTs given on one command line over
    HTTP/2 (the others end with code 000), so an h2 median was one request on a new connection."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        args = ["h2load", "-n", str(count), "-c", "1", "-m", "1", "-d", f.name, "--log-file", log.name,
                "-H", "content-type: application/json", f"http://127.0.0.1:{port}/v1/chat/completions"]
        if not h2:
            args.insert(1, "--h1")
        subprocess.run(args, capture_output=True, text=True, timeout=300)
        rows = [line.split() for line in open(log.name) if line.strip()]
    os.unlink(f.name)
    ok = [int(t) / 1000 for _, status, t in (r[:3] for r in rows) if status == "200"]
    return {"ok": len(ok), "failed": count - len(ok), "total_p50_ms": median(ok), "total_p99_ms": percentile(ok, 99)}


def h2load(port, h1, requests, body_file):
    args = ["h2load", "-n", str(requests), "-c", "16", "-m", "1", "-d", body_file,
            "-H", "content-type: application/json", f"http://127.0.0.1:{port}/v1/chat/completions"]
    if h1:
        args.insert(1, "--h1")
    out = subprocess.run(args, capture_output=True, text=True, timeout=300).stdout
    rate = ok = 0.0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rate = float(line.split(",")[1].split()[0])
        if line.startswith("status codes:"):
            ok = float(line.split()[2])
    # Answers per second include refusals (503); a shedding gateway must not pass them off as capacity.
    return rate * ok / max(1, requests), ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=("python", "nginx"), default="python",
                        help="python: burst_backend.py (~0.45 CPU-ms a request, so capacity runs measure it); "
                             "nginx: static_backend.py, the same 32-chunk stream from nginx (streams only, "
                             "no single/non-stream rows), so the relay is the bottleneck")
    parser.add_argument("--rates", default="100,1000,2000", help="open-loop streams/s")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--single", type=int, default=300, help="sequential requests for single-request latency")
    parser.add_argument("--capacity", type=int, default=20000, help="requests per h2load capacity run (0: skip)")
    parser.add_argument("--paths", default="direct,nghttpx,central,car")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--baseline-bin", help="a second build's binaries (scripts/build-release.sh DIR: linked as --bin is), measured as central-before/car-before")
    parser.add_argument("--bin", help="use this build's fleetgate, fleet-agent and fleet-load instead of building")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for this build's gateways (repeatable), e.g. FLEETGATE_LIMITS_SHED_LAG_MILLISECONDS=5")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the --baseline-bin gateways (repeatable)")
    parser.add_argument("--capacity-protocols", default="h2,h1", help="closed-loop capacity over h2c, HTTP/1.1 or both")
    parser.add_argument("--capacity-body", choices=("stream", "plain"), default="stream",
                        help="the closed-loop capacity's requests: streams (default) or `stream: false` requests")
    parser.add_argument("--of-capacity", default="",
                        help="open-loop rates as multiples of the h2c capacity measured just before, in the same "
                             "round (e.g. 0.5,2: half and twice capacity; replaces --rates) — on a shared machine "
                             "capacity moves with the neighbours' load")
    parser.add_argument("--overload", action="store_true",
                        help="only the overload rows: open-loop --rates (e.g. 0.5× and 2× capacity) and h2c capacity; "
                             "no single-request latency, no HTTP/1.1 capacity")
    args = parser.parse_args()
    if args.overload:
        args.single, args.capacity_protocols = 0, "h2"
    bin_dir = args.bin or release_build("fleetgate", "fleet-agent", "fleet-load")
    backend_port, nghttpx_port = free_port(), free_port()
    static_root = None
    if args.backend == "nginx":  # streams only: the relay, not the backend, is then the bottleneck
        if args.capacity_body == "plain":
            raise SystemExit("--backend nginx answers every request with a stream: no --capacity-body plain")
        backend, static_root = static_backend.start(backend_port)
    else:
        backend = subprocess.Popen([PY, os.path.join(ROOT, "LoadTests", "burst_backend.py"), "--port",
                                    str(backend_port)], stdout=subprocess.DEVNULL)
    wait_port(backend_port)
    nghttpx = start_nghttpx(nghttpx_port, backend_port)
    wanted = args.paths.split(",")
    gateways = []
    paths = []  # (name, port, pid of the relay or None, pid of the agent or None, h2)
    if "direct" in wanted:
        paths.append(("direct", backend_port, None, None, False))
    if "nghttpx" in wanted:
        paths.append(("nghttpx", nghttpx_port, nghttpx.pid, None, True))
    builds = [("", bin_dir, args.env)] + ([("-before", args.baseline_bin, args.baseline_env)] if args.baseline_bin else [])
    print(f"load average at start: {os.getloadavg()}", flush=True)
    try:
        for suffix, directory, extra_env in builds:
            for kind in ("central", "car"):
                if kind in wanted:
                    g = Gateway(kind + suffix, directory, backend_port, kind == "car", args.log_level, extra_env)
                    gateways.append(g)
                    paths.append((g.name, g.port, g.proc.pid, g.agent.pid if g.agent else None, True))
        body_stream = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(BODY_PLAIN if args.capacity_body == "plain" else BODY_STREAM, body_stream)
        body_stream.close()
        factors = [float(x) for x in args.of_capacity.split(",") if x]
        # Row keys: a rate in streams/s, or ("x", factor) for a multiple of the capacity just measured.
        rates = [("x", x) for x in factors] or [float(r) for r in args.rates.split(",") if r]
        rows = {}
        for r in range(args.rounds):
            order = paths[r % len(paths):] + paths[:r % len(paths)]
            for name, port, pid, agent_pid, h2 in order:
                if h2:
                    fleet_load(bin_dir, port, ["--rate", "0", "--count", "50"])  # warm-up
                if h2 and args.single:
                    single = fleet_load(bin_dir, port, ["--rate", "0", "--count", str(args.single)])
                    rows.setdefault((name, "single"), []).append(single)
                if args.single and args.backend != "nginx":  # nginx's answer to `stream: false` is a stream
                    plain = sequential(port, args.single, h2, BODY_PLAIN)
                    rows.setdefault((name, "nonstream"), []).append(plain)
                capacity_first = bool(factors) and args.capacity and h2
                if capacity_first:
                    measure_capacity(rows, name, port, pid, h2, args, body_stream.name)
                for key in rates:
                    if not h2:
                        continue
                    rate = key
                    if factors:
                        if not capacity_first:
                            continue
                        rate = key[1] * rows[(name, "cap-h2")][-1]["rate"]
                    before = (cpu_seconds(pid) if pid else 0, cpu_seconds(agent_pid) if agent_pid else 0,
                              cpu_seconds(backend.pid), client_cpu_seconds())
                    started = time.monotonic()
                    res = fleet_load(bin_dir, port, ["--rate", str(rate), "--duration", str(args.duration),
                                                     "--connections", "16"])
                    # Whether the client and the backend kept up (a saturated client delays its own
                    # reads, and its TTFT is then partly its own queue): cores over the whole call.
                    wall = time.monotonic() - started
                    res["client_cores"] = (client_cpu_seconds() - before[3]) / wall
                    res["backend_cores"] = (cpu_seconds(backend.pid) - before[2]) / wall
                    res["rate"] = rate
                    res["cap"] = rows[(name, "cap-h2")][-1]["rate"] if capacity_first else float("nan")
                    res["cpu_us"] = ((cpu_seconds(pid) - before[0]) / max(1, res["ok"]) * 1e6) if pid else float("nan")
                    res["agent_us"] = ((cpu_seconds(agent_pid) - before[1]) / max(1, res["ok"]) * 1e6
                                       if agent_pid else float("nan"))
                    rows.setdefault((name, key), []).append(res)
                    time.sleep(0.5)
                if args.capacity and not capacity_first:
                    measure_capacity(rows, name, port, pid, h2, args, body_stream.name)
                print(f"round {r + 1} {name} done, load average {os.getloadavg()[0]:.1f}", flush=True)
        report(rows, paths, rates, args)
        print(f"load average at end: {os.getloadavg()}")
    finally:
        for g in gateways:
            g.stop()
        stop(nghttpx)
        stop(backend)
        if static_root:
            shutil.rmtree(static_root, ignore_errors=True)


def measure_capacity(rows, name, port, pid, h2, args, body_file):
    """Closed-loop capacity (h2load, 16 connections) over the protocols asked for, into `rows`."""
    for h1 in (False, True):
        if (not h1 and not h2) or ("h1" if h1 else "h2") not in args.capacity_protocols.split(","):
            continue
        before, t0 = (cpu_seconds(pid) if pid else 0), time.time()
        rate, ok = h2load(port, h1, args.capacity, body_file)
        wall = time.time() - t0
        cpu = (cpu_seconds(pid) - before) if pid else float("nan")
        rows.setdefault((name, "cap-h1" if h1 else "cap-h2"), []).append(
            {"rate": rate, "ok": ok, "cores": cpu / wall, "cpu_ms": cpu / max(1, ok) * 1e3})


def report(rows, paths, rates, args):
    names = [p[0] for p in paths]

    def med(name, key, field):
        values = [x[field] for x in rows.get((name, key), []) if x.get(field) == x.get(field)]
        return median(values) if values else float("nan")

    def f(v, spec=".3f"):
        return "" if v != v else format(v, spec)

    print(f"\nBursting backend (32 chunks; {args.backend}), medians of {args.rounds} rounds, ms unless stated; log level {args.log_level}"
          + ("; capacity rows: `stream: false` requests" if args.capacity_body == "plain" else ""))
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    print("| single stream TTFT p50 | " + " | ".join(f(med(n, "single", "ttft_p50_ms")) for n in names) + " |")
    print("| single stream total p50 | " + " | ".join(f(med(n, "single", "stream_p50_ms")) for n in names) + " |")
    print("| non-stream request p50 | " + " | ".join(f(med(n, "nonstream", "total_p50_ms")) for n in names) + " |")
    for rate in rates:
        label = f"{rate[1]:g}× capacity" if isinstance(rate, tuple) else f"{rate:g}/s"
        if isinstance(rate, tuple):
            print(f"| open {label}: offered streams/s | " + " | ".join(f(med(n, rate, "rate"), ".0f") for n in names) + " |")
        print(f"| open {label} ok % | " + " | ".join(
            f(100 * med(n, rate, "ok") / max(1, med(n, rate, "ok") + med(n, rate, "failed")), ".1f") for n in names) + " |")
        print(f"| open {label} TTFT p50 / p99 | " + " | ".join(
            f"{f(med(n, rate, 'ttft_p50_ms'), '.2f')} / {f(med(n, rate, 'ttft_p99_ms'), '.2f')}" for n in names) + " |")
        if isinstance(rate, tuple):  # against the capacity of the same round
            print(f"| open {label}: admitted streams/s, % of the round's h2c capacity | " + " | ".join(
                f"{f(med(n, rate, 'ok') / args.duration, '.0f')}, "
                f"{f(median([100 * x['ok'] / args.duration / x['cap'] for x in rows.get((n, rate), [])]), '.0f')}"
                for n in names) + " |")
        else:
            print(f"| open {label} admitted streams/s, % of h2c capacity | " + " | ".join(
                f"{f(med(n, rate, 'ok') / args.duration, '.0f')}, "
                f"{f(100 * med(n, rate, 'ok') / args.duration / med(n, 'cap-h2', 'rate'), '.0f')}" for n in names) + " |")
        print(f"| open {label} admitted streams per relay CPU-second, % of that at h2c capacity | " + " | ".join(
            f"{f(1e6 / med(n, rate, 'cpu_us'), '.0f')}, {f(100 * med(n, 'cap-h2', 'cpu_ms') * 1e3 / med(n, rate, 'cpu_us'), '.0f')}"
            for n in names) + " |")
        print(f"| open {label} relay CPU µs/stream | " + " | ".join(f(med(n, rate, "cpu_us"), ".0f") for n in names) + " |")
        print(f"| open {label} agent CPU µs/stream | " + " | ".join(f(med(n, rate, "agent_us"), ".0f") for n in names) + " |")
        print(f"| open {label}: client (fleet-load) / backend cores | " + " | ".join(
            f"{f(med(n, rate, 'client_cores'), '.2f')} / {f(med(n, rate, 'backend_cores'), '.2f')}" for n in names) + " |")
    for key, label in (("cap-h2", "h2c"), ("cap-h1", "HTTP/1.1")) if args.capacity else ():  # --capacity 0: none
        print(f"| capacity {label}, 16 conns: streams/s answered 200 | " + " | ".join(f(med(n, key, "rate"), ".0f") for n in names) + " |")
        print(f"| capacity {label}: % answered 200 (the rest shed) | " + " | ".join(
            f(100 * med(n, key, "ok") / args.capacity, ".1f") for n in names) + " |")
        print(f"| capacity {label}: cores, CPU-ms each | " + " | ".join(
            f"{f(med(n, key, 'cores'), '.2f')}, {f(med(n, key, 'cpu_ms'), '.3f')}" for n in names) + " |")


if __name__ == "__main__":
    main()
