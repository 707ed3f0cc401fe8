#!/usr/bin/env python3
"""Audit benchmark (issue #20): do audits on trusted capacity catch cars that return wrong text,
how fast, and how often do they accuse an honest car? Real model, real processes on loopback.

Two llama-cpp-python servers with SmolLM2-135M ($FLEETGATE_MODEL): one is the cars' runtime, one
the zone's trusted runtime that scores by teacher forcing (`/v1/completions`, echo + logprobs).
For each car kind — honest, wrong text always (`--cheat-every 1`), wrong text one job in ten
(`--cheat-every 10`) — a fresh gateway (`--audit-endpoint eu-central=TRUSTED --audit-fraction F`)
and one `fleet-agent run --engine openai-local` car; chat requests one at a time (temperature
--temperature, max_tokens --max-tokens), each waiting for its audit, until the car is quarantined
or --requests requests. Reported: per-audit scores (mean log-likelihood per token, from the
gateway's "Audit scored" lines), detection rate (failed audits of wrong answers), false positives
(failed audits of honest answers), requests and seconds until quarantine.

Time to quarantine against the audit fraction is then derived by Monte Carlo from the measured
per-audit rates and the gateway's reputation rule (AuditReputation: Beta(49,1) prior, memory 0.98,
quarantine below 0.95): requests until quarantine when each request is audited with probability F.

Run: ~/.cache/fleetgate/venv/bin/python LoadTests/bench_audit.py [--bin-dir .build/debug]
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

from bench_common import ROOT, free_port, percentile, start, stop, wait_port

PROMPTS = [
    "What is the capital of France?", "Name three colours of the rainbow.", "Why is the sky blue?",
    "Give me a short tip for sleeping well.", "What does a car battery do?", "Say hello in Spanish.",
    "What is two plus two?", "Describe a cat in one sentence.", "What is rain made of?",
    "Name a planet in our solar system.", "What is the opposite of hot?", "Suggest a name for a dog.",
    "What do bees make?", "How many days are in a week?", "What colour is grass?",
    "Write one sentence about the sea.", "What is a bicycle?", "Name a fruit that is yellow.",
    "What do you use an umbrella for?", "Tell me a fact about the moon.",
]
SECRET = "audit-bench-secret-0123456789abcdef"


def llama(port):
    python = os.environ["FLEETGATE_PYTHON"]
    model = os.environ["FLEETGATE_MODEL"]
    proc = start([python, "-m", "llama_cpp.server", "--model", model, "--model_alias", "smollm2-135m",
                  "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_threads_batch", "1",
                  "--n_ctx", "2048"])
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return proc
        except Exception:
            time.sleep(0.5)
    raise SystemExit(f"llama server on {port} did not start")


def metric(text, name, labels=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(admin):
    return urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()


def run_car(args, kind, cheat_every, car_url, trusted_url, log_path):
    client, tunnel, admin = free_port(), free_port(), free_port()
    env = dict(os.environ, FLEETGATE_FLEET_SECRET=SECRET, FLEETGATE_CACHE="/nonexistent-fleetgate-cache")
    log = open(log_path, "w")
    gateway = subprocess.Popen(
        [os.path.join(args.bin_dir, "fleetgate"), "serve", "--tunnel-auth", "token", "--client-port", str(client),
         "--tunnel-port", str(tunnel), "--admin-port", str(admin), "--log-level", "info",
         "--audit-endpoint", f"eu-central={trusted_url}", "--audit-fraction", str(args.fraction),
         "--dispatch-first-token-timeout-seconds", "120"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port(client)
    token = subprocess.run([os.path.join(args.bin_dir, "fleetgate"), "token", "issue", "--vehicle-id", kind,
                            "--region", "eu-central"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    agent = subprocess.Popen(
        [os.path.join(args.bin_dir, "fleet-agent"), "run", "--gateway", f"127.0.0.1:{tunnel}", "--vehicle-id", kind,
         "--region", "eu-central", "--engine", "openai-local", "--upstream", car_url, "--model-map",
         "smollm2-135m=smollm2-135m", "--cheat-every", str(cheat_every), "--log-level", "warning"],
        env=dict(os.environ, FLEET_AGENT_TOKEN=token), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {"kind": kind, "cheat_every": cheat_every, "requests": 0, "quarantined_after": None, "seconds": None}
    try:
        deadline = time.time() + 60
        while metric(scrape(admin), "fleet_cars_connected") < 1 and time.time() < deadline:
            time.sleep(0.2)
        started = time.time()
        for i in range(args.requests):
            body = json.dumps({"model": "smollm2-135m", "max_tokens": args.max_tokens, "temperature": args.temperature,
                               "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{client}/v1/chat/completions", data=body,
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=300) as response:
                    route = response.headers.get("x-fleet-route")
                    response.read()
            except urllib.error.HTTPError as error:
                if error.code == 503:  # the car is gone: quarantined
                    break
                raise
            if route == "car":
                result["requests"] += 1
            # Wait for this request's audit (if one was queued) before the next.
            waited_from, queued = time.time(), None
            deadline = time.time() + 300
            while time.time() < deadline:
                m = scrape(admin)
                done = sum(metric(m, "fleet_audits_total", f'verdict="{v}"') for v in ("pass", "fail", "skipped", "error"))
                queued = metric(m, "fleet_audits_queued_total")
                if done >= queued:
                    break
                time.sleep(0.1)
            if queued and queued > result.get("_queued", 0):
                result["_queued"] = queued
                result.setdefault("audit_seconds", []).append(round(time.time() - waited_from, 2))
            if metric(m, "fleet_cars_quarantined_total") >= 1:
                result["quarantined_after"] = result["requests"]
                result["seconds"] = round(time.time() - started, 1)
                break
        m = scrape(admin)
        for v in ("pass", "fail", "skipped", "error"):
            result[v] = int(metric(m, "fleet_audits_total", f'verdict="{v}"'))
        result["dropped"] = int(metric(m, "fleet_audits_dropped_total"))
    finally:
        stop(agent)
        stop(gateway)
        log.close()
    result["scores"] = parse_scores(log_path)
    return result


def parse_scores(log_path):
    scores = []
    for line in open(log_path):
        if "Audit scored" not in line:
            continue
        mean = re.search(r"fleet\.audit\.mean_logprob=(-?[0-9.e+-]+)", line)
        verdict = re.search(r"fleet\.audit\.verdict=(\w+)", line)
        tokens = re.search(r"fleet\.audit\.tokens=(\d+)", line)
        if mean and verdict:
            scores.append({"mean": float(mean.group(1)), "verdict": verdict.group(1),
                           "tokens": int(tokens.group(1)) if tokens else None})
    return scores


def audits_to_quarantine(fail_prob_per_request, fraction, rng, limit=100_000):
    """Requests until quarantine under the gateway's rule, each audited with probability `fraction`."""
    passes = fails = 0.0
    for request in range(1, limit + 1):
        if rng.random() >= fraction:
            continue
        passes *= 0.98
        fails *= 0.98
        if rng.random() < fail_prob_per_request:
            fails += 1
        else:
            passes += 1
        if (49 + passes) / (50 + passes + fails) < 0.95:
            return request
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, ".build", "debug"))
    parser.add_argument("--fraction", type=float, default=1.0, help="audit fraction of the live runs")
    parser.add_argument("--requests", type=int, default=60, help="most requests of the always-wrong car")
    parser.add_argument("--honest-requests", type=int, default=40)
    parser.add_argument("--one-in-ten-requests", type=int, default=60,
                        help="most requests of the one-in-ten car (quarantine needs ~30 audits at fraction 1)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--kinds", default="honest,always,one-in-ten", help="which cars to run, comma-separated")
    parser.add_argument("--out", default=os.path.join(ROOT, "LoadTests", "results", "audit.json"))
    args = parser.parse_args()
    car_port, trusted_port = free_port(), free_port()
    car_runtime, trusted_runtime = llama(car_port), llama(trusted_port)
    logs = os.path.join(ROOT, "LoadTests", "results")
    os.makedirs(logs, exist_ok=True)
    results = []
    try:
        for kind, every, n in [("honest", 0, args.honest_requests), ("always", 1, args.requests),
                               ("one-in-ten", 10, args.one_in_ten_requests)]:
            if kind not in args.kinds.split(","):
                continue
            saved = args.requests
            args.requests = n
            r = run_car(args, kind, every, f"http://127.0.0.1:{car_port}/v1", f"http://127.0.0.1:{trusted_port}/v1",
                        f"/tmp/bench_audit_{kind}.log")
            args.requests = saved
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "scores"}), flush=True)
    finally:
        stop(car_runtime)
        stop(trusted_runtime)

    empty = {"scores": [], "quarantined_after": None, "seconds": None}
    by_kind = {r["kind"]: r for r in results}
    honest, always, sometimes = (by_kind.get(k, empty) for k in ("honest", "always", "one-in-ten"))
    # Audits of wrong answers and of honest ones. At fraction 1 with requests one at a time, the
    # one-in-ten car's audit i is its job i, and jobs 10, 20, … are the wrong ones.
    wrong = list(always["scores"])
    right = list(honest["scores"])
    if args.fraction == 1.0:
        for i, s in enumerate(sometimes["scores"], start=1):
            (wrong if i % 10 == 0 else right).append(s)
    honest_scores = [s["mean"] for s in right]
    cheat_scores = [s["mean"] for s in wrong]
    fp = sum(1 for s in right if s["verdict"] == "fail")
    n_honest = len(right)
    detected = sum(1 for s in wrong if s["verdict"] == "fail")
    n_cheat = len(wrong)
    summary = {
        "fraction_live": args.fraction, "temperature": args.temperature, "max_tokens": args.max_tokens,
        "honest_answer_scores": {"n": n_honest, "min": min(honest_scores, default=None),
                                 "p10": percentile(honest_scores, 10) if honest_scores else None,
                                 "median": percentile(honest_scores, 50) if honest_scores else None},
        "wrong_answer_scores": {"n": n_cheat, "max": max(cheat_scores, default=None),
                                "median": percentile(cheat_scores, 50) if cheat_scores else None},
        "false_positive_rate": (fp / n_honest) if n_honest else None, "false_positives": fp,
        "detection_rate": (detected / n_cheat) if n_cheat else None, "detected": detected,
        "honest_quarantined": honest["quarantined_after"],
        "always_requests_to_quarantine": always["quarantined_after"], "always_seconds": always["seconds"],
        "one_in_ten_requests_to_quarantine": sometimes["quarantined_after"], "one_in_ten_seconds": sometimes["seconds"],
        "one_in_ten_failed_audits": sometimes.get("fail"),
        "one_in_ten_audits": sometimes.get("pass", 0) + sometimes.get("fail", 0),
        "audit_seconds_median": percentile([s for r in results for s in r.get("audit_seconds", [])], 50),
    }
    # Derived: requests until quarantine against the audit fraction (Monte Carlo, 2000 runs each).
    detection = summary["detection_rate"] or 0.0
    false_positive = summary["false_positive_rate"] or 0.0
    rng = random.Random(20)
    curve = []
    for fraction in (0.01, 0.05, 0.1, 0.25, 0.5, 1.0):
        row = {"fraction": fraction}
        for name, p in (("always", detection), ("one_in_ten", 0.1 * detection + 0.9 * false_positive)):
            runs = [audits_to_quarantine(p, fraction, rng) for _ in range(2000)]
            done = sorted(r for r in runs if r is not None)
            row[name + "_median"] = percentile(done, 50) if done else None
            row[name + "_p90"] = percentile(done, 90) if done else None
        # An honest car: share quarantined within 10,000 requests if a share of its audits failed
        # falsely (none did in the runs: these are what-ifs, not measurements).
        for p_fp in (0.001, 0.01):
            runs = [audits_to_quarantine(p_fp, fraction, rng, limit=10_000) for _ in range(500)]
            row[f"honest_quarantined_within_10k_if_fp_{p_fp}"] = sum(1 for r in runs if r is not None) / len(runs)
        curve.append(row)
    summary["derived_requests_to_quarantine"] = curve
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "runs": results}, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
