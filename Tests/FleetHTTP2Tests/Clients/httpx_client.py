"""httpx with HTTP/2 (prior knowledge): GET /, streamed SSE, POST /echo; prints ok."""
import sys

import httpx

host, port = sys.argv[1], int(sys.argv[2])
with httpx.Client(http1=False, http2=True, base_url=f"http://{host}:{port}") as client:
    r = client.get("/")
    assert r.http_version == "HTTP/2", r.http_version
    assert r.text == "Hello, world\n"
    with client.stream("GET", "/sse?n=20") as s:
        events = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert len(events) == 20, len(events)
    r = client.post("/echo", content=b"y" * 100_000)
    assert r.content == b"y" * 100_000
print("ok")
