#!/usr/bin/env python3
"""Memory checks of one proxy process, for bench/run (prints one JSON object).

  memory.py conns PORT PID N PATH     N keep-alive client connections, each after one GET of
                                      PATH, held open together: RSS before and while held.
  memory.py slow PORT PID PATH RATE   one GET of PATH (1 GiB) read at RATE bytes/s: RSS
                                      before, the highest RSS seen while it streamed, bytes read.
"""
import json
import socket
import sys
import threading
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def request(path):
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer app\r\n\r\n".encode()


def read_head(sock, buffered=b""):
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response head")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head, length, rest


def conns(port, pid, count, path):
    before = rss_kb(pid)
    socks = []
    ok = 0
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(request(path))
            head, length, rest = read_head(s)
            while len(rest) < (length or 0):
                rest += s.recv(65536)
            if head.startswith(b"HTTP/1.1 200"):
                ok += 1
            socks.append(s)
        time.sleep(0.5)
        held = rss_kb(pid)
    finally:
        for s in socks:
            s.close()
    return {"connections": count, "ok": ok, "rss_before_kb": before, "rss_held_kb": held}


def slow(port, pid, path, rate):
    before = rss_kb(pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            value = rss_kb(pid)
            if value and value > peak[0]:
                peak[0] = value
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(request(path))
    head, length, rest = read_head(s)
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"slow reader: {head.splitlines()[0].decode(errors='replace')}")
    got = len(rest)
    start = time.monotonic()
    step = 65536
    try:
        while length is None or got < length:
            chunk = s.recv(step)
            if not chunk:
                break
            got += len(chunk)
            ahead = got / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    finally:
        done.set()
        sampler.join()
        s.close()
    return {"bytes": got, "expected": length, "seconds": round(time.monotonic() - start, 1),
            "rss_before_kb": before, "rss_peak_kb": peak[0]}


def main():
    mode, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if mode == "conns":
        result = conns(port, pid, int(sys.argv[4]), sys.argv[5])
    else:
        result = slow(port, pid, sys.argv[4], float(sys.argv[5]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
