#!/usr/bin/env python3
"""Writes the seed corpora (LoadTests/fuzz/corpus/<target>/seed-*): realistic inputs and edge cases.

Run from anywhere; it rewrites only the seed-* files, never what the fuzzers added.
"""
import base64, hashlib, hmac, json, os, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SECRET = b"fuzz-fleet-secret-0123456789"  # StatusFuzz.secret / RequestFuzz's core


# Seeds that show a bug not fixed on this branch live in findings/ (README: Findings), not in the
# corpus CI replays: FINDINGS maps (target, seed name) to the file name there.
FINDINGS = {
    ("request", "edge-deep.json"): "nesting-over-32.json",
    ("sse", "big-event.txt"): "event-over-bound-in-one-read.txt",
    ("sse", "multiline-data.txt"): "multiline-data-forwarded.txt",
}


def write(target, name, data):
    if (target, name) in FINDINGS:
        d = os.path.join(ROOT, "..", "findings", target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, FINDINGS[(target, name)]), "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# --- request: OpenAI request bodies -------------------------------------------------------------
R = "request"
write(R, "chat-stream.json", json.dumps({"model": "fleet-8b", "stream": True, "messages": [{"role": "user", "content": "Hello, fleet"}]}, separators=(",", ":")))
write(R, "chat-full.json", json.dumps({
    "model": "fleet-8b", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 64,
    "temperature": 0.7, "top_p": 0.9, "seed": 42, "stop": ["\n\n", "END"], "user": "app-7",
    "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Why?"},
                 {"role": "assistant", "content": "Because."}, {"role": "user", "content": "Explain \"that\" é 🚗"}]}))
write(R, "chat-python-spacing.json", json.dumps({"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5}, indent=2))
write(R, "chat-content-parts.json", '{"model":"fleet-8b","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]}]}')
write(R, "chat-tools-n.json", '{"model":"fleet-8b","n":2,"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"auto","messages":[{"role":"user","content":"x"}]}')
write(R, "chat-json-format.json", '{"model":"fleet-8b","response_format":{"type":"json_object"},"logprobs":true,"top_logprobs":2,"messages":[{"role":"user","content":"x"}]}')
write(R, "completion.json", '{"model":"fleet-8b","prompt":"Once upon a time","max_tokens":16,"stream":false}')
write(R, "completion-escapes.json", '{"model":"fleet-8b","prompt":"tab\\t nl\\n quote\\" bs\\\\ \\u00e9 \\ud83d\\ude97 \\u0000","max_tokens":2}')
write(R, "responses-text.json", '{"model":"fleet-8b","input":"Tell me a joke","instructions":"Be brief","max_output_tokens":32,"metadata":{"k":"v"}}')
write(R, "responses-items.json", '{"model":"fleet-8b","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]},{"type":"message","role":"assistant","content":"yo"}],"stream":true}')
write(R, "responses-refused.json", '{"model":"fleet-8b","input":"x","previous_response_id":"resp_1","store":true,"background":true}')
write(R, "edge-empty-object.json", "{}")
write(R, "edge-empty-messages.json", '{"model":"fleet-8b","messages":[]}')
write(R, "edge-wrong-types.json", '{"model":5,"messages":"hi","max_tokens":"8","stream":"yes"}')
write(R, "edge-nulls.json", '{"model":"fleet-8b","messages":[{"role":"user","content":null}],"max_tokens":null,"stream":null,"stop":null}')
write(R, "edge-limits.json", '{"model":"fleet-8b","messages":[{"role":"user","content":"x"}],"max_tokens":65537,"n":9}')
write(R, "edge-float-tokens.json", '{"model":"fleet-8b","messages":[{"role":"user","content":"x"}],"max_tokens":5.0,"temperature":1e400}')
write(R, "edge-unknown-model.json", '{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}')
write(R, "edge-duplicate-keys.json", '{"model":"gpt-4o","model":"fleet-8b","messages":[{"role":"user","content":"x"}],"max_tokens":3,"max_tokens":4}')
write(R, "edge-deep.json", '{"model":"fleet-8b","messages":[{"role":"user","content":"x"}],"tools":' + "[" * 40 + "]" * 40 + "}")
write(R, "edge-bom-trailing.json", b'\xef\xbb\xbf{"model":"fleet-8b","messages":[{"role":"user","content":"x"}]} ')
write(R, "edge-whitespace.json", ' \r\n\t{ "model" : "fleet-8b" , "messages" : [ { "role" : "user" , "content" : "x" } ] , "max_tokens" : 7 }\n')
write(R, "edge-not-json.txt", "model=fleet-8b&prompt=x")

# --- sse: what an upstream sends on one attempt ---------------------------------------------------
S = "sse"
def chunk(id_, content=None, role=False, finish=None, index=0, spaced=False, usage=None, extra=None):
    delta = {}
    if role: delta["role"] = "assistant"
    if content is not None: delta["content"] = content
    obj = {"id": id_, "object": "chat.completion.chunk", "created": 1700000000, "model": "fleet-8b",
           "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
    if usage is not None: obj["usage"] = usage
    if extra: obj.update(extra)
    sep = (", ", ": ") if spaced else (",", ":")
    return "data: " + json.dumps(obj, separators=sep, ensure_ascii=spaced) + "\n\n"
done = "data: [DONE]\n\n"
write(S, "car-stream.txt", chunk("chatcmpl-1", role=True) + "".join(chunk("chatcmpl-1", t) for t in ["Hel", "lo", ",", " fleet"]) + chunk("chatcmpl-1", finish="stop") + done)
write(S, "llama-cpp-python.txt", chunk("chatcmpl-2", role=True, spaced=True) + chunk("chatcmpl-2", "é 🚗", spaced=True) + chunk("chatcmpl-2", finish="length", spaced=True) + done)
write(S, "usage.txt", chunk("c3", role=True) + chunk("c3", "a") + chunk("c3", finish="stop") + 'data: {"id":"c3","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}\n\n' + done)
write(S, "legacy.txt", 'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"Once","finish_reason":null}]}\n\ndata: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" upon","logprobs":null,"finish_reason":"stop"}]}\n\n' + done)
write(S, "n2-tools.txt", chunk("c4", role=True) + 'data: {"id":"c4","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null},{"index":1,"delta":{"content":"b"},"finish_reason":null}]}\n\n' + chunk("c4", finish="tool_calls") + done)
write(S, "sse-fields-crlf.txt", ": keep-alive\r\n\r\nevent: message\nid: 7\nretry: 1000\ndata: " + chunk("c5", "x")[6:-2] + "\r\n\r\n" + done)
write(S, "multiline-data.txt", 'data: {"id":"c6","object":"chat.completion.chunk",\ndata: "created":1,"model":"m","choices":[{"index":0,"delta":{"content":"y"},"finish_reason":null}]}\n\n' + done)
write(S, "error-midstream.txt", chunk("c7", role=True) + chunk("c7", "a") + 'data: {"error":{"message":"engine crashed","type":"server_error"}}\n\n')
write(S, "error-first.txt", 'data: {"error":{"message":"overloaded"}}\n\n')
write(S, "done-first.txt", done + chunk("c8", "after"))
write(S, "data-after-done.txt", chunk("c9", "a") + done + chunk("c9", "b") + done)
write(S, "ids-change.txt", chunk("c10", "a") + chunk("other", "b") + 'data: {"choices":[{"index":0,"delta":{"content":"c"}}]}\n\n' + done)
write(S, "bad-json.txt", chunk("c11", "a") + 'data: {"id":"c11","choices":[{"delta":{"content":"\\ud800"}}]\n\n')
write(S, "bad-utf8.txt", chunk("c12", "a").encode() + b'data: {"id":"c12","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"\xff\xfe"},"finish_reason":null}]}\n\n')
write(S, "no-choices.txt", 'data: {"id":"c13","object":"chat.completion.chunk"}\n\n')
write(S, "many-tokens.txt", chunk("c14", role=True) + "".join(chunk("c14", str(i)) for i in range(24)) + done)
write(S, "big-event.txt", chunk("c15", "z" * 700) + done)
write(S, "unterminated.txt", chunk("c16", "a") + 'data: {"id":"c16"')
write(S, "empty-deltas.txt", chunk("c17", role=True) + chunk("c17", "") + chunk("c17") + chunk("c17", "x") + done)

# --- status: the car's status stream (NDJSON) -------------------------------------------------------
T = "status"
def token(vid, regions, exp=4000000000):
    payload = json.dumps({"exp": exp, "regions": sorted(regions), "vid": vid}, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(SECRET, payload, hashlib.sha256).digest()
    b = lambda d: base64.urlsafe_b64encode(d).decode().rstrip("=")
    return "fgv1." + b(payload) + "." + b(mac)
state = {"plugged_in": True, "charge_percent": 80, "link": "wifi", "slots_free": 4}
def hello(**over):
    m = {"v": 1, "type": "hello", "vehicle_id": "VIN-FUZZ-1", "credential": token("VIN-FUZZ-1", ["eu-central"]),
         "hardware": "ai5", "models": [{"id": "fleet-8b", "decode_tps": 40.0, "prefill_tps": 900.0}],
         "region": "eu-central", "slots": 4, "queue": 2, "policy": {"only_while_plugged": True, "min_charge_percent": 50},
         "continuation": "exact", "state": state}
    m.update(over)
    return json.dumps(m, separators=(",", ":")) + "\n"
def st(**over):
    s = dict(state); s.update(over)
    return json.dumps({"v": 1, "type": "state", "state": s}, separators=(",", ":")) + "\n"
write(T, "hello-state-drain.ndjson", hello() + st(charge_percent=79, departing_in_s=120, uplink_mbps=35.5) + '{"v":1,"type":"drain","reason":"driving","seconds_left":30}\n')
write(T, "hello-other-region.ndjson", hello(region="us-east"))
write(T, "hello-expired.ndjson", hello(credential=token("VIN-FUZZ-1", ["eu-central"], exp=1000)))
write(T, "hello-other-vehicle.ndjson", hello(vehicle_id="VIN-OTHER"))
write(T, "hello-forged.ndjson", hello(credential="fgv1.eyJ2aWQiOiJ4In0.AAAA"))
write(T, "hello-models-empty.ndjson", hello(models=[]))
write(T, "hello-models-bad-rates.ndjson", hello(models=[{"id": "m", "decode_tps": -1, "prefill_tps": 1e308}]))
write(T, "hello-incomplete.ndjson", '{"v":1,"type":"hello","vehicle_id":"VIN-FUZZ-1"}\n')
write(T, "state-with-rates.ndjson", st() + json.dumps({"v": 1, "type": "state", "state": state, "models": [{"id": "fleet-8b", "decode_tps": 41.5, "prefill_tps": 880}]}) + "\n")
write(T, "version-2.ndjson", '{"v":2,"type":"hello"}\n')
write(T, "unknown-type.ndjson", '{"v":1,"type":"reboot"}\n')
write(T, "crlf-blank-lines.ndjson", "\n\n" + hello().replace("\n", "\r\n") + "\n\n" + st())
write(T, "malformed-then-hello.ndjson", "{not json}\n" + hello())
write(T, "long-line.ndjson", '{"v":1,"type":"drain","reason":"' + "x" * 17000 + '","seconds_left":1}\n')
write(T, "no-newline.ndjson", hello().rstrip("\n"))

# --- regions: region maps and the gateway's YAML configuration --------------------------------------
G = "regions"
with open(os.path.join(os.path.dirname(__file__), "..", "..", "Regions", "default.yaml")) as f:
    write(G, "default-map.yaml", f.read())
write(G, "small-map.yaml", """version: "2026-01"
zones:
  eu: {residency: strict, countries: [DE, FR, EU]}
  us: {residency: preferred, countries: [US, CA]}
regions:
  eu-central: {zone: eu, countries: [DE, EU], centroid: {lat: 50.1, lon: 8.7}, neighbours: {eu-west: 12}}
  eu-west:
    zone: eu
    countries: [FR]
    central:
      - url: https://central.eu.example/v1
        models: [fleet-8b]
  us-east: {zone: us, countries: [US, CA]}
origins: {private: eu-central, unknown: eu-central, noDatabase: us-east}
""")
write(G, "map-errors.yaml", """zones:
  eu: {residency: lax, countries: [de, XX, FR]}
  other: {countries: [FR]}
regions:
  a: {zone: nowhere, countries: [FR]}
  b: {zone: eu, countries: [US], neighbours: {ghost: 5}, centroid: {lat: 91, lon: x}}
  c: {zone: eu, central: [{url: "ftp://x"}, {models: [m]}], surprise: 1}
origins: {private: a, unknown: ghost}
extra: 1
""")
write(G, "map-anchors-tags.yaml", """zones: &z
  eu: {countries: [DE]}
regions:
  r: {zone: eu, countries: !!seq [DE]}
  s: *z
origins: {private: r, unknown: r, noDatabase: r}
""")
write(G, "gateway-config.yaml", """listeners:
  host: 0.0.0.0
  client:
    port: 8080
    proxyProtocolFrom: [10.0.0.0/8]
  tunnel:
    port: 7443
    allowCleartext: true
limits:
  maxBodyBytes: 1048576
dispatch:
  hedging: false
  maxAttempts: 3
geo:
  trustedProxies: [192.0.2.0/24, "2001:db8::/32"]
logging:
  level: info
""")
write(G, "gateway-config-errors.yaml", """listeners:
  client:
    port: eighty
    prot: 80
limits: [1, 2]
auth:
  fleetSecret: do-not-write-secrets-here
dispatch:
  maxAttempts: 3
  maxAttempts: 4
""")
write(G, "empty.yaml", "")
write(G, "not-a-mapping.yaml", "- just\n- a list\n")
write(G, "bad-yaml.yaml", "zones: {eu: [DE\nregions: : :\n\t- tab")
write(G, "multi-document.yaml", "zones: {}\n---\nregions: {}\n...\n")

# --- proxy: PROXY protocol v2 headers and what follows ----------------------------------------------
P = "proxy"
SIG = bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
def hdr(cmd, fam, block):
    return SIG + bytes([cmd, fam]) + struct.pack(">H", len(block)) + block
v4 = bytes([89, 160, 20, 112, 10, 0, 0, 1]) + struct.pack(">HH", 12345, 8080)
v6 = bytes.fromhex("2a02d180000000000000000000000001") + bytes.fromhex("20010db8000000000000000000000002") + struct.pack(">HH", 443, 8443)
h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
write(P, "tcp4-h2.bin", hdr(0x21, 0x11, v4) + h2)
write(P, "tcp6-http1.bin", hdr(0x21, 0x21, v6) + b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
write(P, "local-health.bin", hdr(0x20, 0x00, b""))
write(P, "tcp4-tlvs.bin", hdr(0x21, 0x11, v4 + bytes([0x01, 0x00, 0x02, ord("h"), ord("2"), 0x04, 0x00, 0x00])) + h2)
write(P, "udp4.bin", hdr(0x21, 0x12, v4))
write(P, "unix.bin", hdr(0x21, 0x31, b"/tmp/a".ljust(216, b"\0")))
write(P, "short-block.bin", hdr(0x21, 0x11, v4[:6]))
write(P, "bad-version.bin", SIG + bytes([0x11, 0x11, 0, 12]) + v4)
write(P, "bad-command.bin", hdr(0x2F, 0x11, v4))
write(P, "too-long.bin", SIG + bytes([0x21, 0x11, 0x04, 0x01]))
write(P, "v1-text.bin", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
write(P, "partial-signature.bin", SIG[:7])
write(P, "mapped-v4-in-v6.bin", hdr(0x21, 0x21, bytes.fromhex("00000000000000000000ffff01020304") + bytes(16) + struct.pack(">HH", 1, 2)))

# --- origin: peer line, then X-Forwarded-For values -------------------------------------------------
O = "origin"
write(O, "direct-public.txt", "81.2.69.142")
write(O, "direct-private.txt", "192.168.1.20\n1.2.3.4")
write(O, "trusted-proxy-xff.txt", "10.1.2.3\n81.2.69.142, 10.0.0.7")
write(O, "trusted-chain.txt", "192.0.2.5\n89.160.20.112, 192.0.2.9, 10.0.0.1\n2001:db8::5")
write(O, "untrusted-peer-xff.txt", "8.8.8.8\n81.2.69.142")
write(O, "via-proxy-protocol.txt", "proxy 10.0.0.9\n81.2.69.142")
write(O, "xff-port.txt", "10.0.0.1\n81.2.69.142:443")
write(O, "xff-bracketed-v6.txt", "10.0.0.1\n[2a02:d180::1]:80")
write(O, "xff-unknown.txt", "10.0.0.1\nunknown")
write(O, "xff-empty-hop.txt", "10.0.0.1\n81.2.69.142,,")
write(O, "xff-private-forged.txt", "10.0.0.1\n127.0.0.1")
write(O, "xff-zone.txt", "10.0.0.1\nfe80::1%eth0")
write(O, "transition-6to4.txt", "2002:5102:458e::1")
write(O, "transition-teredo.txt", "10.0.0.1\n2001:0:4136:e378:8000:63bf:ae4d:b971")
write(O, "nat64.txt", "64:ff9b::5102:458e")
write(O, "v4-mapped.txt", "::ffff:81.2.69.142")
write(O, "noncanonical-v4.txt", "10.0.0.1\n081.2.69.142\n0x51.2.69.142")
write(O, "cidr-lines.txt", "2001:db8::/32\n10.0.0.0/8\n1.2.3.4/33\n/8")
write(O, "ipv6-peer.txt", "2a02:d180::1\n2001:db8::1")
write(O, "no-peer.txt", "\n81.2.69.142")
print("seeds written under", ROOT)
