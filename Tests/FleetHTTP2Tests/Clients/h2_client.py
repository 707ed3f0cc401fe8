"""Raw hyper-h2 client: GET / and POST /echo over h2c with prior knowledge; prints ok."""
import socket
import sys

import h2.config
import h2.connection
import h2.events

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.create_connection((host, port), timeout=10)
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
get = conn.get_next_available_stream_id()
conn.send_headers(get, [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", host)], end_stream=True)
post = conn.get_next_available_stream_id()
body = b"x" * 200_000
conn.send_headers(post, [(":method", "POST"), (":path", "/echo"), (":scheme", "http"), (":authority", host)])
sock.sendall(conn.data_to_send())
bodies = {get: b"", post: b""}
sent = 0
done = set()
while len(done) < 2:
    # Send the echo body as flow control allows.
    while sent < len(body):
        window = min(conn.local_flow_control_window(post), conn.max_outbound_frame_size)
        if window <= 0:
            break
        chunk = body[sent:sent + window]
        conn.send_data(post, chunk, end_stream=sent + len(chunk) == len(body))
        sent += len(chunk)
    sock.sendall(conn.data_to_send())
    data = sock.recv(65536)
    if not data:
        break
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.DataReceived):
            bodies[event.stream_id] += event.data
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            done.add(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            sys.exit(f"reset {event}")
    sock.sendall(conn.data_to_send())
assert bodies[get] == b"Hello, world\n", bodies[get]
assert bodies[post] == body, len(bodies[post])
print("ok")
