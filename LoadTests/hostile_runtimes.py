#!/usr/bin/env python3
"""Cars whose runtimes misbehave, beside honest traffic (helper-84's harness, sessions 31-32).

    python3 LoadTests/hostile_runtimes.py --bin <dir with fleetgate and fleet-agent> --modes honest,delayok:1 \
        [--conc 2] [--duration 10] [--policy round-robin]

One `fleet-agent run --engine openai-local` car (4 slots, HW4) per mode, each in front of its own small
OpenAI-compatible runtime that streams four tokens (and their usage), or misbehaves by its mode (any mode
answers 500 to a prompt with POISON in it, as poison_request.py sends):
  honest        streams at once
  err500        answers 500 to everything
  alt           500, then 200, then 500, ...
  rand:P        500 with probability P
  delay500:S    waits S seconds, then 500
  delayok:S     waits S seconds, then streams (a first token later than the car advertises)
  busy503       503 to everything
--conc clients send streaming requests back to back for --duration seconds, each waiting out a refusal's
Retry-After as the SDKs do. Prints how many failed and
with what, the latency percentiles, the POSTs each runtime got, and the gateway's hedge and retry
counters. Loopback only; stops by itself.
"""
import argparse, collections, http.client, itertools, json, random, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench_common import percentile, start_token_fleet, stop

ERROR = b'{"error":{"message":"the runtime failed","type":"server_error"}}'


class RuntimeServer(ThreadingHTTPServer):
    """A runtime whose client (the agent) may cancel a job and close the connection before the answer:
    writing to it then fails, as it would for any runtime, and is not the harness's error to print."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def runtime(mode, posts, key):
    counter = itertools.count()

    class Runtime(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body):
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.reply(200, json.dumps({"object": "list", "data": [{"id": "m1", "object": "model"}]}).encode())

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            posts[key] += 1
            if b"POISON" in body:  # a prompt that crashes every runtime (poison_request.py)
                posts["poison"] += 1
                return self.reply(500, b'{"error":{"message":"the runtime failed on this prompt","type":"server_error"}}')
            n = next(counter)
            name, _, argument = mode.partition(":")
            if name == "err500" or (name == "alt" and n % 2 == 0) or (name == "rand" and random.random() < float(argument)):
                return self.reply(500, ERROR)
            if name == "busy503":
                return self.reply(503, ERROR)
            if name in ("delay500", "delayok"):
                time.sleep(float(argument))
                if name == "delay500":
                    return self.reply(500, ERROR)
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()

            def event(data):
                payload = f"data: {data}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

            try:
                for token in ["Hello", " from", " the", " car", None]:
                    delta = {"content": token} if token else {}
                    event(json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m1",
                                      "choices": [{"index": 0, "delta": delta,
                                                   "finish_reason": None if token else "stop"}]}))
                event(json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m1",
                                  "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4,
                                                           "total_tokens": 9}}))
                event("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the agent cancelled the job (a hedge's loser)

    return Runtime


def post(port):
    body = json.dumps({"model": "m1", "stream": True, "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hello"}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"content-type": "application/json"})
    start = time.time()
    retry_after = 0
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status if "[DONE]" in response.read().decode() else "incomplete"
    except urllib.error.HTTPError as error:
        status = f"{error.code} {json.loads(error.read() or b'{}').get('error', {}).get('code')}"
        retry_after = float(error.headers.get("retry-after") or 0)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        status = f"error {type(error).__name__}"  # a reset or a cut answer counts as a failure, not a lost client
    return status, time.time() - start, retry_after


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--modes", required=True)
    parser.add_argument("--conc", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--policy")
    args = parser.parse_args()
    modes = args.modes.split(",")
    posts = collections.Counter()
    servers = [RuntimeServer(("127.0.0.1", 0), runtime(mode, posts, f"car-{i} {mode}"))
               for i, mode in enumerate(modes)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    processes, ports = start_token_fleet(args.bin, [server.server_address[1] for server in servers], args.policy)
    admin = f"http://127.0.0.1:{ports['admin']}"
    try:
        results, lock, end = [], threading.Lock(), time.time() + args.duration

        def client():
            # As the SDKs do, a client waits out a refusal's Retry-After before its next request.
            while time.time() < end:
                status, seconds, retry_after = post(ports["client"])
                with lock:
                    results.append((status, seconds))
                time.sleep(min(retry_after, max(0, end - time.time())))

        threads = [threading.Thread(target=client) for _ in range(args.conc)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = [s for _, s in results]
        served = sum(1 for status, _ in results if status == 200)
        print(f"modes {modes}: {len(results)} requests, {len(results) - served} failed "
              f"{dict(collections.Counter(status for status, _ in results if status != 200))}, "
              f"p50 {percentile(seconds, 50) * 1000:.0f} ms, p99 {percentile(seconds, 99) * 1000:.0f} ms, "
              f"max {max(seconds) * 1000:.0f} ms")
        print(f"runtime POSTs by car: {dict(posts)}")
        metrics = urllib.request.urlopen(f"{admin}/metrics").read().decode().splitlines()
        print("gateway:", [line for line in metrics if line.startswith(("fleet_hedges_total", "fleet_upstream_retries_total"))])
    finally:
        for process in reversed(processes):
            stop(process)


if __name__ == "__main__":
    main()
