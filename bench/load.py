#!/usr/bin/env python3
"""Load against `lookalike serve` on loopback: many shoppers uploading real photos, some
clients sending decompression bombs, and slow clients that never finish their headers.

    bench/load.py --bin target/release/lookalike --index IDX --photos DIR [--seconds 60]

Starts the server itself (127.0.0.1, a free port), runs for a bounded time, stops it,
and prints one JSON object: status counts, 5xx other than 503-with-Retry-After, p50/p99
of accepted searches, the server's peak memory (VmHWM), whether the slow clients were
disconnected and /healthz kept answering. Standard library only.
"""
import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(name, data):
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def uploader(port, payloads, stop, out, lock, tag):
    rng = random.Random(hash(tag))
    while not stop.is_set():
        name, data = rng.choice(payloads)
        body, ctype = multipart(name, data)
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/api/search", body=body, headers={"Content-Type": ctype})
            res = conn.getresponse()
            res.read()
            status, retry = res.status, res.getheader("Retry-After")
            conn.close()
        except OSError as e:
            status, retry = f"error: {type(e).__name__}", None
        ms = (time.perf_counter() - t0) * 1e3
        with lock:
            out.append((tag, status, retry, ms))
        if status == 503:
            time.sleep(float(retry or 1))


def slow_client(port, results, stop):
    """Sends one header line, then a byte every 2 s: must be disconnected."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.time()
    s.settimeout(2)
    while not stop.is_set():
        try:
            s.sendall(b"X")
            if s.recv(1) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    results.append(time.time() - started)
    s.close()


def healthz(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def vm_hwm_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--index", required=True)
    ap.add_argument("--photos", required=True, help="folder of real photos to upload")
    ap.add_argument("--bomb", default="tests/fixtures/hostile/bomb.png")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--bombers", type=int, default=16)
    ap.add_argument("--slow", type=int, default=50)
    a = ap.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [a.bin, "serve", "--index", a.index, "--addr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not healthz(port):
        if time.time() > deadline or server.poll() is not None:
            sys.exit("the server did not start")
        time.sleep(0.2)

    files = sorted(os.listdir(a.photos))[:200]
    photos = [(f, open(os.path.join(a.photos, f), "rb").read()) for f in files]
    bomb = [("bomb.png", open(a.bomb, "rb").read())]
    stop, lock, out, slow_done = threading.Event(), threading.Lock(), [], []
    threads = [threading.Thread(target=uploader, args=(port, photos, stop, out, lock, f"shopper{i}"))
               for i in range(a.clients)]
    threads += [threading.Thread(target=uploader, args=(port, bomb, stop, out, lock, f"bomb{i}"))
                for i in range(a.bombers)]
    threads += [threading.Thread(target=slow_client, args=(port, slow_done, stop))
                for _ in range(a.slow)]
    for t in threads:
        t.start()
    health_ok = health_all = 0
    t_end = time.time() + a.seconds
    while time.time() < t_end:
        time.sleep(1)
        health_all += 1
        health_ok += healthz(port)
    stop.set()
    for t in threads:
        t.join(timeout=70)
    peak = vm_hwm_mb(server.pid)
    server.terminate()
    server.wait(timeout=30)
    log_lines = len(server.stderr.read().splitlines())

    shoppers = [r for r in out if r[0].startswith("shopper")]
    bombs = [r for r in out if r[0].startswith("bomb")]
    statuses = {}
    for _, status, _, _ in out:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    bad = [r for r in out if (isinstance(r[1], int) and r[1] >= 500 and not (r[1] == 503 and r[2]))
           or isinstance(r[1], str)]
    accepted = [ms for _, status, _, ms in shoppers if status == 200]
    print(json.dumps({
        "seconds": a.seconds, "clients": a.clients, "bombers": a.bombers, "slow_clients": a.slow,
        "requests": len(out), "statuses": statuses,
        "bad_5xx_or_errors": len(bad),
        "searches_ok": len(accepted),
        "search_ok_per_second": round(len(accepted) / a.seconds, 1),
        "search_p50_ms": round(pct(accepted, 0.5) or 0, 1),
        "search_p99_ms": round(pct(accepted, 0.99) or 0, 1),
        "bombs_refused_413": sum(1 for r in bombs if r[1] == 413),
        "server_peak_mb": round(peak or 0),
        "slow_clients_disconnected": len(slow_done),
        "slow_client_seconds_max": round(max(slow_done), 1) if slow_done else None,
        "healthz_ok": f"{health_ok}/{health_all}",
        "server_log_lines": log_lines,
    }))


if __name__ == "__main__":
    main()
