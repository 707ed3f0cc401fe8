#!/usr/bin/env python3
"""Floods of HTTP/2 frames that carry nothing for the gateway (helper-85), one connection each.

    python3 LoadTests/frame_floods.py --bin <dir with fleetgate> [--seconds 3] [--kinds empty-data,...]

Starts `fleetgate serve` (no cars; h2c on a free loopback port) and, for each kind, opens one connection,
sends an open request's HEADERS where the kind needs a stream, then writes batches of 10,000 frames as fast
as the socket takes them, for --seconds or until the gateway sends GOAWAY and closes. Kinds:
empty-data (zero-length DATA without END_STREAM, CVE-2019-9518), window-update (connection level, +1),
window-update-stream (+1 on the open stream), window-update-ended and priority-ended (on a stream the client
reset first), priority (on idle streams), unknown (extension type 0x42, which nghttp2 drops unread). Prints the frames sent, when GOAWAY came and its code (11: ENHANCE_YOUR_CALM), and the
gateway's CPU seconds a second of the flood. Before session 32 none of these drew a GOAWAY. Loopback only;
stops by itself.
"""
import argparse, os, socket, struct, subprocess, tempfile, threading, time

from bench_common import cpu_seconds, free_port, stop, wait_port

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def request_headers(port):
    fields = [(":method", "POST"), (":scheme", "http"), (":path", "/v1/chat/completions"),
              (":authority", f"127.0.0.1:{port}"), ("content-type", "application/json")]
    # END_HEADERS, no END_STREAM: the body never comes.
    return frame(0x1, 0x4, 1, b"".join(literal(n, v) for n, v in fields))


BATCHES = {
    "empty-data": lambda: frame(0x0, 0, 1) * 10_000,
    "window-update": lambda: frame(0x8, 0, 0, struct.pack(">I", 1)) * 10_000,
    "window-update-stream": lambda: frame(0x8, 0, 1, struct.pack(">I", 1)) * 10_000,
    "window-update-ended": lambda: frame(0x8, 0, 1, struct.pack(">I", 1)) * 10_000,
    "priority": lambda: b"".join(frame(0x2, 0, 1001 + 2 * i, struct.pack(">IB", 0, 15)) for i in range(10_000)),
    "priority-ended": lambda: frame(0x2, 0, 1, struct.pack(">IB", 0, 15)) * 10_000,
    "unknown": lambda: frame(0x42, 0, 0, b"x" * 8) * 10_000,
}


def flood(port, kind, seconds, gateway):
    connection = socket.create_connection(("127.0.0.1", port))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    opening = b"" if kind in ("window-update", "priority", "unknown") else request_headers(port)
    if kind.endswith("-ended"):
        opening += frame(0x3, 0, 1, struct.pack(">I", 8))  # RST_STREAM CANCEL: stream 1 has ended
    connection.sendall(PREFACE + frame(0x4, 0, 0) + frame(0x4, 0x1, 0) + opening)
    if kind.endswith("-ended"):
        time.sleep(0.2)  # the gateway has closed stream 1 before the flood
    start = time.time()
    goaway = []

    def read():
        buffer = b""
        while True:
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while len(buffer) >= 9:
                length = int.from_bytes(buffer[:3], "big")
                if len(buffer) < 9 + length:
                    break
                if buffer[3] == 0x7:
                    goaway.append((time.time() - start, int.from_bytes(buffer[13:17], "big")))
                buffer = buffer[9 + length:]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    batch = BATCHES[kind]()
    sent = 0
    cpu_before = cpu_seconds(gateway.pid)
    try:
        while time.time() - start < seconds and not goaway:
            connection.sendall(batch)
            sent += 10_000
    except OSError:
        pass  # the gateway closed the connection
    elapsed = time.time() - start
    cpu = cpu_seconds(gateway.pid) - cpu_before
    connection.close()
    reader.join(2)
    answer = f"GOAWAY {goaway[0][1]} after {goaway[0][0] * 1000:.0f} ms" if goaway else "no GOAWAY"
    # CPU time is counted in clock ticks: over a flood cut off in milliseconds it says nothing.
    load = f"gateway {cpu / elapsed:.2f} CPU-s/s" if elapsed >= 0.5 else "too short to measure the gateway's CPU"
    print(f"{kind:22s} {sent:>11,} frames sent in {elapsed:4.1f} s: {answer}; {load}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--kinds", default=",".join(BATCHES))
    args = parser.parse_args()
    port = free_port()
    env = dict(os.environ, FLEETGATE_FLEET_SECRET="0123456789abcdef-flood-secret")
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        gateway = subprocess.Popen(
            [f"{args.bin}/fleetgate", "serve", "--tunnel-auth", "token", "--client-port", str(port),
             "--tunnel-port", "0", "--admin-port", "0"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port(port)
            for kind in args.kinds.split(","):
                flood(port, kind, args.seconds, gateway)
        finally:
            stop(gateway)


if __name__ == "__main__":
    main()
