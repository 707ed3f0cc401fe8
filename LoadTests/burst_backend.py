#!/usr/bin/env python3
"""A fast OpenAI-compatible backend for the relay benchmarks: it answers at once and, streamed,
writes all 32 (``--chunks``) SSE chunks back to back — a *bursting* backend, the workload that
exposes a relay's fixed cost per request (a paced engine makes every relay pay a wake-up per token
and hides it).

HTTP/1.1 with keep-alive on raw asyncio (uvloop when installed), so nghttpx, fleetgate's central
path and the agent's openai-local engine all reach it the same way. Serves:
  GET  /v1/models                              {"data":[{"id": MODEL}]}
  POST /v1/chat/completions, /v1/completions   stream true: SSE (chunked), false: one JSON body
Token i of a stream is " t<i>"; usage is sent when ``stream_options.include_usage`` is asked for.
Never logs bodies.
"""
import argparse
import asyncio
import json
import time

try:
    import uvloop  # type: ignore
except ImportError:  # pragma: no cover - plain asyncio is fine, only slower
    uvloop = None


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def stream_events(n, model, chat=True, created=None, usage=False):
    """The SSE events of a streamed answer of `n` tokens (" t0", " t1", …), `data: [DONE]` last: the
    role chunk (chat), a chunk a token (the last with `finish_reason: length`), the usage chunk when
    asked. `static_backend.py` serves the same bytes."""
    ident, obj = "chatcmpl-burst", "chat.completion.chunk" if chat else "text_completion"
    created = int(time.time()) if created is None else created
    events = []
    if chat:
        events.append({"id": ident, "object": obj, "created": created, "model": model,
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    for i in range(n):
        last = i == n - 1
        choice = ({"index": 0, "delta": {"content": " t%d" % i}, "finish_reason": "length" if last else None}
                  if chat else {"index": 0, "text": " t%d" % i, "finish_reason": "length" if last else None})
        events.append({"id": ident, "object": obj, "created": created, "model": model, "choices": [choice]})
    if usage:
        events.append({"id": ident, "object": obj, "created": created, "model": model, "choices": [],
                       "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}})
    return [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


class Backend(asyncio.Protocol):
    chunks = 32
    model = "fleet-8b"

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                self.transport.close()
                return
            method, path = parts[0], parts[1]
            length, chunked = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            if chunked:  # a relay that forwards an HTTP/2 body without content-length (nghttpx)
                body, at = b"", end + 4
                while True:
                    line_end = self.buffer.find(b"\r\n", at)
                    if line_end < 0:
                        return
                    size = int(self.buffer[at:line_end].split(b";")[0], 16)
                    if len(self.buffer) < line_end + 2 + size + 2:
                        return
                    body += self.buffer[line_end + 2:line_end + 2 + size]
                    at = line_end + 2 + size + 2
                    if size == 0:
                        break
                self.buffer = self.buffer[at:]
            else:
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4:end + 4 + length]
                self.buffer = self.buffer[end + 4 + length:]
            self.respond(method, path, body)

    def respond(self, method, path, body):
        if method == "GET" and path.startswith("/v1/models"):
            payload = json.dumps({"object": "list", "data": [{"id": self.model, "object": "model"}]}, separators=(",", ":")).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(payload), payload))
            return
        try:
            request = json.loads(body)
        except ValueError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            return
        chat = path.endswith("/chat/completions")
        n = min(int(request.get("max_tokens") or self.chunks), self.chunks)
        created = int(time.time())
        ident = "chatcmpl-burst"
        model = request.get("model", self.model)
        if not request.get("stream"):
            text = "".join(" t%d" % i for i in range(n))
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                      if chat else {"index": 0, "text": text, "finish_reason": "length"})
            payload = json.dumps({"id": ident, "object": "chat.completion" if chat else "text_completion",
                                  "created": created, "model": model, "choices": [choice],
                                  "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}}).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(payload), payload))
            return
        out = [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"]
        usage = bool((request.get("stream_options") or {}).get("include_usage"))
        out += [chunk(event) for event in stream_events(n, model, chat, created, usage)]
        out.append(b"0\r\n\r\n")
        # Each chunk is its own write, as a server that streams "as fast as it can" does; the
        # kernel coalesces what the reader has not taken yet.
        for part in out:
            self.transport.write(part)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--model", default="fleet-8b")
    args = parser.parse_args()
    Backend.chunks, Backend.model = args.chunks, args.model
    if uvloop:
        uvloop.install()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Backend, "127.0.0.1", args.port, backlog=1024))
    print(f"burst backend on 127.0.0.1:{args.port} ({'uvloop' if uvloop else 'asyncio'})", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
