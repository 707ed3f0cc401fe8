#!/usr/bin/env python3
"""A poison request beside honest traffic (helper-80): what one client's bad request does to another's.

    python3 LoadTests/poison_request.py --bin <dir with fleetgate and fleet-agent> \
        [--duration 10] [--poison-every 1] [--policy round-robin] [--sdk]

Two cars (`fleet-agent run --engine openai-local`, 4 slots each), each in front of its own small
OpenAI-compatible runtime that streams four tokens, or answers 500 when the prompt holds POISON. One
client sends a poison request every --poison-every seconds; another sends a well-formed request every
0.1 s. Prints how many of the well-formed requests failed, what the poison requests got (status,
`x-should-retry`), and each car's failures in a row and back-off from /admin/cars. Before
session 31 a poison request benched every car it was tried on, and about half of the other client's
requests failed. With --sdk (run it with ~/.cache/fleetgate/venv/bin/python) the poison requests go
through the official openai SDK with its default retries, and the runtimes' poison POSTs per call are
counted. Loopback only; stops by itself.
"""
import argparse, collections, http.client, json, sys, threading, time, urllib.request

from bench_common import start_token_fleet, stop
from hostile_runtimes import RuntimeServer, runtime


def post(port, prompt):
    body = json.dumps({"model": "m1", "stream": True, "max_tokens": 8,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, dict(response.headers), "[DONE]" in text
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), False
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        return f"error {type(error).__name__}", {}, False  # a failure, not a lost client


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--poison-every", type=float, default=1)
    parser.add_argument("--policy", help="dispatch.policy (default: the gateway's)")
    parser.add_argument("--sdk", action="store_true", help="poison requests through the openai SDK, its retries on")
    args = parser.parse_args()
    posts = collections.Counter()  # "poison": the poison POSTs the runtimes answered
    runtimes = [RuntimeServer(("127.0.0.1", 0), runtime("honest", posts, f"car-{i}")) for i in range(2)]
    for server in runtimes:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    processes, ports = start_token_fleet(args.bin, [server.server_address[1] for server in runtimes], args.policy)
    try:
        poisoned = []

        def attacker():
            end = time.time() + args.duration
            client = None
            if args.sdk:
                import openai
                client = openai.OpenAI(base_url=f"http://127.0.0.1:{ports['client']}/v1", api_key="none")
            while time.time() < end:
                if client:
                    try:
                        list(client.chat.completions.create(
                            model="m1", stream=True, max_tokens=8, messages=[{"role": "user", "content": "POISON"}]))
                        poisoned.append(("ok", "-"))
                    except openai.APIStatusError as error:
                        poisoned.append((error.status_code, error.response.headers.get("x-should-retry", "-")))
                else:
                    status, headers, _ = post(ports["client"], "POISON")
                    poisoned.append((status, headers.get("x-should-retry", "-")))
                time.sleep(args.poison_every)

        thread = threading.Thread(target=attacker)
        thread.start()
        ok = failed = 0
        end = time.time() + args.duration
        while time.time() < end:
            status, _, done = post(ports["client"], "hello")
            ok, failed = (ok + 1, failed) if status == 200 and done else (ok, failed + 1)
            time.sleep(0.1)
        thread.join()
        cars = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/admin/cars").read())
        rows = [(car.get("failuresInARow", "-"), car.get("backedOffSeconds", "-")) for car in cars]
        answers = sorted(set(poisoned))
        print(f"{args.bin}: well-formed {ok} ok, {failed} failed ({100 * failed / max(1, ok + failed):.0f} %); "
              f"{len(poisoned)} poison {'SDK calls' if args.sdk else 'requests'} answered {answers} "
              f"(status, x-should-retry), {posts['poison'] / max(1, len(poisoned)):.1f} runtime POSTs each; "
              f"cars' (failures in a row, backed off s): {rows}")
    finally:
        for process in reversed(processes):
            stop(process)


if __name__ == "__main__":
    sys.exit(main())
