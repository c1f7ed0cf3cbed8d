"""Many clients reading one big answer slowly, and the proxy's memory meanwhile, for bench/slow-readers.sh.

    python3 bench/slow_readers.py HOST PORT PATH CLIENTS SECONDS RATE PID [SIZE]

Opens CLIENTS connections, sends `GET PATH` (Connection: close) on each, then for SECONDS reads RATE bytes per second
from each socket (a slow reader: the proxy has the answer, the client is behind), then drains every answer to its end
and checks it: SIZE body bytes after the head for a Content-Length answer (4 MiB by default), a last chunk for a
chunked one. Every 100 ms it samples VmRSS of process PID (the proxy). Prints one line of key=value pairs:
rss_before_kib, rss_peak_kib (during the slow phase), rss_hwm_kib (VmHWM at the end), complete, failed, drain_s.
"""
import selectors
import socket
import sys
import time

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
clients, seconds, rate, pid = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
size = int(sys.argv[8]) if len(sys.argv) > 8 else 4 * 1024 * 1024
request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def status(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Reader:
    """One client: what it has read (the head kept until complete, then only counts and the last bytes)."""

    def __init__(self):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setblocking(False)
        self.sock.sendall(request)
        self.head = b""
        self.head_done = False
        self.body = 0
        self.tail = b""
        self.closed = False

    def take(self, data):
        if not self.head_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_done = True
            data = self.head[end + 4 :]
            self.head = self.head[:end]
        self.body += len(data)
        self.tail = (self.tail + data)[-7:]

    def read(self, most):
        """Reads up to `most` bytes without blocking; False once the proxy closed."""
        try:
            data = self.sock.recv(most)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self.closed = True
            self.sock.close()
            return False
        self.take(data)
        return True

    def complete(self):
        if not self.head.startswith(b"HTTP/1.1 200"):
            return False
        if b"transfer-encoding: chunked" in self.head.lower():
            return self.tail.endswith(b"\r\n0\r\n\r\n")
        return self.body == size


rss_before = status("VmRSS")
readers = [Reader() for _ in range(clients)]
rss_peak = status("VmRSS")
started = time.time()
next_read = started
while time.time() - started < seconds:
    rss_peak = max(rss_peak, status("VmRSS"))
    if time.time() >= next_read:
        for r in readers:
            if not r.closed:
                r.read(rate)
        next_read += 1
    time.sleep(0.1)
rss_peak = max(rss_peak, status("VmRSS"))

drain_started = time.time()
selector = selectors.DefaultSelector()
for r in readers:
    if not r.closed:
        selector.register(r.sock, selectors.EVENT_READ, r)
open_count = len(selector.get_map())
deadline = drain_started + 60
while open_count and time.time() < deadline:
    for key, _ in selector.select(timeout=1):
        r = key.data
        while True:
            try:
                data = r.sock.recv(262144)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                selector.unregister(r.sock)
                r.sock.close()
                r.closed = True
                open_count -= 1
                break
            r.take(data)
drain_s = time.time() - drain_started
complete = sum(1 for r in readers if r.complete())
hwm = status("VmHWM")
for r in readers:
    if not r.closed:
        r.sock.close()
print(f"rss_before_kib={rss_before} rss_peak_kib={rss_peak} rss_hwm_kib={hwm} complete={complete} failed={clients - complete} drain_s={drain_s:.1f}")
