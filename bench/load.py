#!/usr/bin/env python3
"""Load against `lookalike serve` on loopback: honest shoppers uploading real photos beside
attackers — decompression bombs, slow headers, idle bodies (a search announcing 20 MB and
sending nothing), batch URL floods (32 URLs of a 20 MB image each), id floods (batches of
32 ids), upload floods (20 MB bodies).

    bench/load.py --bin target/release/lookalike --index IDX --photos DIR [--seconds 60]

Starts the server itself (127.0.0.1, a free port) and an image server for the URL floods
(127.0.0.1, another port, allowed to the server by --fetch-allow), runs for a bounded
time, stops both, and prints one JSON object: status counts per kind of client, 5xx other
than 503-with-Retry-After, p50/p99 of accepted searches, /healthz latency, the server's
peak memory (VmHWM), how long idle bodies and slow clients were held. The /healthz probe
connects from 127.0.0.1; shoppers from addresses of their own (four a household, from
127.0.1.1 on); each kind of attacker binds its own other loopback source addresses
(127.0.0.2, 127.0.0.3, ...), so per-address limits are met as in the field. Every
connection goes to loopback only. Standard library only.

The probe and the shoppers run in processes of their own (`--role`), so that what they
time is the server's answer, not the wait of their thread for the interpreter lock among
the attackers' ~1,300 threads. `--server-cpus` and `--client-cpus` pin the server and the
load (every process of it) to CPUs of their own, as a load generator on another machine
would be: on a 2-core machine, `--server-cpus 0 --client-cpus 1`.
"""
import argparse
import http.client
import json
import os
import http.server
import random
import selectors
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(fields):
    """A multipart body of (name, filename or None, bytes) fields."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        body += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(port, path, body, ctype, source, timeout=120):
    """One POST from `source` (a loopback address): (status, Retry-After, milliseconds)."""
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                          source_address=(source, 0))
        conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        res = conn.getresponse()
        res.read()
        status, retry = res.status, res.getheader("Retry-After")
        conn.close()
    except OSError as e:
        status, retry = f"error: {type(e).__name__}", None
    return status, retry, (time.perf_counter() - t0) * 1e3


def client(port, make, stop, out, lock, tag, source):
    """Sends what `make(rng)` gives ((path, body, content type)) until stopped."""
    rng = random.Random(hash(tag))
    while not stop.is_set():
        path, body, ctype = make(rng)
        status, retry, ms = post(port, path, body, ctype, source)
        with lock:
            out.append((tag, status, retry, ms))
        if status == 503:
            time.sleep(float(retry or 1))
        elif isinstance(status, str):
            time.sleep(0.5)


def idle_bodies(port, n, sources, stop, held):
    """`n` connections, spread over `sources`, each announcing a 20 MB search body and
    sending nothing; records how long the server held each one open."""
    sel = selectors.DefaultSelector()
    head = (b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=x\r\nContent-Length: 20971520\r\n\r\n--x\r\n")
    opened = {}
    while not stop.is_set():
        # Keep `n` open: the server closes them, the attacker opens new ones.
        while len(opened) < n and not stop.is_set():
            s = socket.socket()
            s.setblocking(True)
            s.settimeout(2)
            try:
                s.bind((sources[len(opened) % len(sources)], 0))
                s.connect(("127.0.0.1", port))
                s.sendall(head)
            except OSError:
                s.close()
                break
            s.setblocking(False)
            opened[s] = time.time()
            sel.register(s, selectors.EVENT_READ)
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data or b"HTTP/1.1" in data:
                held.append(time.time() - opened.pop(s))
                sel.unregister(s)
                s.close()
        if len(opened) >= n:
            time.sleep(0.05)
    for s in list(opened):
        s.close()


def image_server(data):
    """A web server on 127.0.0.1 serving `data` as image/jpeg at any path."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:
                pass

        def log_message(self, *_):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def slow_client(port, results, stop, source):
    """Sends one header line, then a byte every 2 s: must be disconnected."""
    s = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
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


def healthz(port, path="/healthz"):
    """Whether /healthz (or `path`) answered 200, and in how many milliseconds."""
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
    except OSError:
        ok = False
    return ok, (time.perf_counter() - t0) * 1e3


def vm_hwm_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def addresses(first, n):
    """`n` loopback addresses from 127.0.0.`first` on."""
    return [f"127.0.{(first + i) // 256}.{(first + i) % 256}" for i in range(n)]


def cpus(spec):
    """A CPU list such as `0` or `0,2-3`, as a set."""
    out = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def probe_role(a):
    """Time /healthz every 0.5 s for `--seconds`; print [[ok, ms], ...]."""
    health = []
    t_end = time.time() + a.seconds
    while time.time() < t_end:
        time.sleep(0.5)
        health.append(healthz(a.port))
    print(json.dumps(health))


def shoppers_role(a):
    """`--clients` shoppers uploading `--photos` for `--seconds`, four a household
    address; print their [[tag, status, retry-after, ms], ...]."""
    files = sorted(os.listdir(a.photos))[:200]
    photos = [(f, open(os.path.join(a.photos, f), "rb").read()) for f in files]

    def shopper(rng):
        name, data = rng.choice(photos)
        return ("/api/search", *multipart([("image", name, data)]))

    homes = addresses(256 + 1, max(1, (a.clients + 3) // 4))
    stop, lock, out = threading.Event(), threading.Lock(), []
    threads = [threading.Thread(target=client, args=(a.port, shopper, stop, out, lock,
                                                     f"shopper{i}", homes[i // 4]))
               for i in range(a.clients)]
    for t in threads:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    for t in threads:
        t.join(timeout=130)
    with lock:
        print(json.dumps(out))


def role(name, a, port):
    """This script again as a process of its own in role `name`."""
    return subprocess.Popen(
        [sys.executable, __file__, "--role", name, "--port", str(port), "--bin", a.bin,
         "--index", a.index, "--photos", a.photos, "--seconds", str(a.seconds),
         "--clients", str(a.clients)], stdout=subprocess.PIPE, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("probe", "shoppers"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--server-cpus", help="pin the server to these CPUs (e.g. 0)")
    ap.add_argument("--client-cpus", help="pin the load (shoppers, attackers, probe) to these CPUs")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--index", required=True)
    ap.add_argument("--photos", required=True, help="folder of real photos to upload")
    ap.add_argument("--ids", help="folder whose file names are the index's ids, for the id "
                    "flood (default: --photos)")
    ap.add_argument("--bomb", default="tests/fixtures/hostile/bomb.png")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--start-seconds", type=float, default=120,
                    help="how long the server may take to be ready (/readyz)")
    ap.add_argument("--clients", type=int, default=64, help="honest shoppers")
    ap.add_argument("--bombers", type=int, default=16)
    ap.add_argument("--slow", type=int, default=50, help="clients slow with their headers")
    ap.add_argument("--idle", type=int, default=1024, help="idle-body connections")
    ap.add_argument("--batch-flooders", type=int, default=32,
                    help="clients sending batches of 32 URLs of a 20 MB image")
    ap.add_argument("--id-flooders", type=int, default=32,
                    help="clients sending batches of 32 ids")
    ap.add_argument("--upload-flooders", type=int, default=32,
                    help="clients sending 20 MB uploads")
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="another argument for `serve` (repeatable)")
    a = ap.parse_args()
    if a.role == "probe":
        return probe_role(a)
    if a.role == "shoppers":
        return shoppers_role(a)
    if a.client_cpus:
        os.sched_setaffinity(0, cpus(a.client_cpus))
    server_cpus = cpus(a.server_cpus) if a.server_cpus else None

    big = b"\xff\xd8\xff" + bytes(20 * 1024 * 1024 - 3 - 64 * 1024)
    images = image_server(big)
    port = free_port()
    started = time.time()
    server = subprocess.Popen(
        [a.bin, "serve", "--index", a.index, "--addr", f"127.0.0.1:{port}",
         "--fetch-allow", "127.0.0.1/32", "--follow-interval", "0"] + a.serve_arg,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None)
    deadline = time.time() + a.start_seconds
    # Ready, not only alive: a server on a Milvus collection counts its catalogue first.
    while not healthz(port, "/readyz")[0]:
        if time.time() > deadline or server.poll() is not None:
            sys.exit("the server did not start")
        time.sleep(0.2)
    start_seconds = time.time() - started
    # The server's log is read as it comes, so that a full pipe never blocks it.
    log = []
    threading.Thread(target=lambda: log.extend(server.stderr), daemon=True).start()

    bomb = open(a.bomb, "rb").read()
    # The id flood asks for items the index holds, so that each entry is a real search.
    ids = [os.path.splitext(f)[0] for f in sorted(os.listdir(a.ids or a.photos))[:1000]]
    image_url = f"http://127.0.0.1:{images.server_address[1]}/big.jpg".encode()

    def bomber(_rng):
        return ("/api/search", *multipart([("image", "bomb.png", bomb)]))

    def batch_of_urls(_rng):
        return ("/api/search/batch", *multipart([("url", None, image_url)] * 32))

    def batch_of_ids(rng):
        return ("/api/search/batch", *multipart([("id", None, rng.choice(ids).encode())
                                                 for _ in range(32)]))

    def upload_20mb(_rng):
        return ("/api/search", *multipart([("image", "big.jpg", big)]))

    stop, lock, out, slow_done, idle_held = (threading.Event(), threading.Lock(), [], [], [])
    threads = []
    # Attackers: each kind from addresses of its own, none from 127.0.0.1.
    kinds = [("bomb", bomber, a.bombers), ("batch_urls", batch_of_urls, a.batch_flooders),
             ("batch_ids", batch_of_ids, a.id_flooders), ("upload", upload_20mb, a.upload_flooders)]
    first = 2
    for kind, make, n in kinds:
        sources = addresses(first, max(1, (n + 15) // 16))
        first += len(sources)
        threads += [threading.Thread(target=client, args=(port, make, stop, out, lock,
                                                          f"{kind}{i}", sources[i % len(sources)]))
                    for i in range(n)]
    slow_sources = addresses(first, 1)
    first += 1
    threads += [threading.Thread(target=slow_client, args=(port, slow_done, stop, slow_sources[0]))
                for _ in range(a.slow)]
    idle_sources = addresses(first, max(1, (a.idle + 31) // 32))
    threads.append(threading.Thread(target=idle_bodies,
                                    args=(port, a.idle, idle_sources, stop, idle_held)))
    probe, shoppers = role("probe", a, port), role("shoppers", a, port)
    for t in threads:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    health = json.loads(probe.communicate()[0])
    out.extend(tuple(r) for r in json.loads(shoppers.communicate()[0]))
    for t in threads:
        t.join(timeout=130)
    peak = vm_hwm_mb(server.pid)
    server.terminate()
    server.wait(timeout=30)
    images.shutdown()

    def kind_of(tag):
        return tag.rstrip("0123456789")

    statuses = {}
    for tag, status, _, _ in out:
        per = statuses.setdefault(kind_of(tag), {})
        per[str(status)] = per.get(str(status), 0) + 1
    bad = [r for r in out if (isinstance(r[1], int) and r[1] >= 500 and not (r[1] == 503 and r[2]))
           or isinstance(r[1], str)]
    bad_kinds = {}
    for tag, *_ in bad:
        bad_kinds[kind_of(tag)] = bad_kinds.get(kind_of(tag), 0) + 1
    accepted = [ms for tag, status, _, ms in out if tag.startswith("shopper") and status == 200]
    health_ms = [ms for ok, ms in health if ok]
    print(json.dumps({
        "seconds": a.seconds, "clients": a.clients, "bombers": a.bombers, "slow_clients": a.slow,
        "idle_bodies": a.idle, "batch_flooders": a.batch_flooders, "id_flooders": a.id_flooders,
        "upload_flooders": a.upload_flooders, "serve_args": a.serve_arg,
        "server_cpus": a.server_cpus, "client_cpus": a.client_cpus,
        "requests": len(out), "statuses": statuses,
        "bad_5xx_or_errors": len(bad), "bad_by_kind": bad_kinds,
        "searches_ok": len(accepted),
        "search_ok_per_second": round(len(accepted) / a.seconds, 1),
        "search_p50_ms": round(pct(accepted, 0.5) or 0, 1),
        "search_p99_ms": round(pct(accepted, 0.99) or 0, 1),
        "server_peak_mb": round(peak or 0),
        "server_start_seconds": round(start_seconds, 1),
        "slow_clients_disconnected": len(slow_done),
        "slow_client_seconds_max": round(max(slow_done), 1) if slow_done else None,
        "idle_bodies_closed": len(idle_held),
        "idle_body_seconds_max": round(max(idle_held), 1) if idle_held else None,
        "healthz_ok": f"{len(health_ms)}/{len(health)}",
        "healthz_p99_ms": round(pct(health_ms, 0.99) or 0, 1),
        "healthz_max_ms": round(max(health_ms), 1) if health_ms else None,
        "server_log_lines": len(log),
    }))


if __name__ == "__main__":
    main()
