"""Shared helpers for the benchmark scripts: processes, CPU from /proc, free ports, medians."""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid):
    """pid and every process below it (nghttpx runs its worker as a child process)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pin(pid, cpus):
    """Binds every thread of a process tree to `cpus` (a set of CPU numbers): on this 2-core machine,
    relay, backend and client on whatever cores the scheduler picks made one closed-loop capacity run
    differ from the next by up to 2×."""
    for p in descendants(pid):
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                os.sched_setaffinity(int(task), cpus)
            except (FileNotFoundError, ProcessLookupError):
                pass  # a thread that ended meanwhile


def cpu_seconds(pid):
    """CPU seconds a process tree has run, summed over threads, in nanoseconds' resolution
    (/proc/PID/task/*/schedstat; /proc/PID/stat's user+sys only counts 10 ms ticks)."""
    return sum(_cpu_one(p) for p in descendants(pid))


def _cpu_one(pid):
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return total / 1e9


def _status_mb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid):
    return _status_mb(pid, "VmHWM")


def rss_mb(pid):
    return _status_mb(pid, "VmRSS")


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def start(args, env=None):
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def start_nghttpx(port, backend_port, proto="http/1.1"):
    """nghttpx with one worker, h2c in front on 127.0.0.1:port, relaying to 127.0.0.1:backend_port (the
    reference relay of the benchmarks); returns its process once it listens."""
    proc = start(["nghttpx", "--conf=/dev/null", "--workers=1", f"--frontend=127.0.0.1,{port};no-tls",
                  f"--backend=127.0.0.1,{backend_port};;proto={proto}", "--backend-keep-alive-timeout=60s",
                  "--accesslog-file=/dev/null", "--errorlog-file=/dev/null"])
    wait_port(port)
    return proc


def stop(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def release_build(*products):
    """Release binaries as production links them (scripts/build-release.sh: the Swift runtime static);
    returns their directory."""
    out = subprocess.run([os.path.join(ROOT, "scripts", "build-release.sh"), "", *products], cwd=ROOT,
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def start_token_gateway(bin_dir, env, log_path, extra=()):
    """`fleetgate serve` in token mode on free loopback ports (`env` holds FLEETGATE_FLEET_SECRET), logging to
    `log_path`; returns (process, ports) once it listens, `ports` mapping client, tunnel and admin to their ports."""
    command = [f"{bin_dir}/fleetgate", "serve", "--tunnel-auth", "token", "--client-port", "0", "--tunnel-port", "0",
               "--admin-port", "0"] + list(extra)
    process = subprocess.Popen(command, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    for _ in range(100):
        ports = {name: int(port) for port, name in
                 re.findall(r"127\.0\.0\.1:(\d+) fleet\.listener=(\w+)", open(log_path).read())}
        if {"client", "tunnel", "admin"} <= ports.keys():
            return process, ports
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"the gateway did not listen within 10 s; see {log_path}")


def issue_token(bin_dir, env, vehicle, region="eu-central"):
    """A car token from `fleetgate token issue` (a day)."""
    return subprocess.check_output([f"{bin_dir}/fleetgate", "token", "issue", "--vehicle-id", vehicle,
                                    "--region", region, "--days", "1"], env=env, text=True).strip()


def start_token_fleet(bin_dir, runtime_ports, policy=None, log_dir=None):
    """`fleetgate serve` in token mode on free loopback ports, and one `fleet-agent run --engine openai-local`
    car (4 slots, HW4, eu-central) in front of each runtime in `runtime_ports`; returns (processes, ports)
    once every car is registered. `ports` maps client, tunnel and admin to their ports; the gateway logs to
    `log_dir`/gateway.log (a new temporary directory by default), the agents to agent-N.log."""
    log_dir = log_dir or tempfile.mkdtemp(prefix="fleet-")
    env = dict(os.environ, FLEETGATE_FLEET_SECRET="0123456789abcdef-bench-secret")
    gateway, ports = start_token_gateway(bin_dir, env, f"{log_dir}/gateway.log",
                                         ["--dispatch-policy", policy] if policy else [])
    processes = [gateway]
    try:
        for i, runtime_port in enumerate(runtime_ports):
            vehicle = f"car-{i}"
            token = issue_token(bin_dir, env, vehicle)
            processes.append(subprocess.Popen(
                [f"{bin_dir}/fleet-agent", "run", "--engine", "openai-local",
                 "--upstream", f"http://127.0.0.1:{runtime_port}/v1", "--slots", "4",
                 "--gateway", f"127.0.0.1:{ports['tunnel']}", "--vehicle-id", vehicle, "--region", "eu-central",
                 "--hardware", "hw4"], env=dict(env, FLEET_AGENT_TOKEN=token),
                stdout=open(f"{log_dir}/agent-{i}.log", "w"), stderr=subprocess.STDOUT))
        for _ in range(100):
            ready = urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/readyz").read().decode()
            if f'"cars":{len(runtime_ports)}' in ready:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"not every car registered within 10 s; see {log_dir}")
        return processes, ports
    except BaseException:
        for process in reversed(processes):
            stop(process)
        raise
