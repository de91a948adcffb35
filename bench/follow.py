#!/usr/bin/env python3
"""Several servers, one index (issue 32, item 5): how long a write through one `serve`
takes to show in another's answers.

Two `lookalike serve` processes run on one index (a Milvus collection, or a folder for
comparison). Each round adds a photo through server A (`POST /api/items`, a new id) and
then asks server B for that item (`GET /api/items/{id}`) every 10 ms until it answers
200; then removes it through B and waits for A to answer 404. Printed (and written with
--out) as one JSON object: the milliseconds from the write's acknowledgement to the other
server's first answer that shows it, p50 / p90 / max, per direction.

    bench/follow.py --index milvus://HOST:PORT/COLLECTION --photo P.jpg [--rounds 20]
    bench/follow.py --index FOLDER --photo P.jpg

The index must exist (`lookalike index`); the items this adds are removed again. The
servers follow the index's version every `--follow-interval` (1 s, their default).
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, data


def start(binary, index, token, interval):
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "--index", index, "--addr", f"127.0.0.1:{port}",
         "--admin-token", token, "--follow-interval", str(interval)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        try:
            if call(port, "GET", "/healthz")[0] == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit(f"serve on {index} exited with {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"serve on {index} did not start")


def until(port, path, status, limit_s=30.0):
    """Milliseconds until GET `path` answers `status` (polled every 10 ms)."""
    t0 = time.perf_counter()
    while True:
        if call(port, "GET", path)[0] == status:
            return (time.perf_counter() - t0) * 1e3
        if time.perf_counter() - t0 > limit_s:
            return None
        time.sleep(0.01)


def summary(ms):
    seen = sorted(m for m in ms if m is not None)
    pick = lambda q: round(seen[min(len(seen) - 1, int(q * len(seen)))], 1) if seen else None
    return {"rounds": len(ms), "not_seen_within_30s": len(ms) - len(seen),
            "p50_ms": pick(0.5), "p90_ms": pick(0.9), "max_ms": round(seen[-1], 1) if seen else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--photo", required=True)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--follow-interval", type=float, default=1.0)
    ap.add_argument("--bin", default=os.environ.get("BIN", "target/release/lookalike"))
    ap.add_argument("--out")
    a = ap.parse_args()
    photo = open(a.photo, "rb").read()
    token = uuid.uuid4().hex
    auth = {"Authorization": f"Bearer {token}"}
    servers = [start(a.bin, a.index, token, a.follow_interval) for _ in range(2)]
    (_, pa), (_, pb) = servers
    added, removed = [], []
    try:
        for r in range(a.rounds):
            item = f"follow-{uuid.uuid4().hex[:12]}"
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n{item}\r\n"
                    f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
                    f"filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + photo + \
                f"\r\n--{boundary}--\r\n".encode()
            s, v = call(pa, "POST", "/api/items", body,
                        {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
            if s not in (200, 201):
                sys.exit(f"add through A: {s} {v[:300]!r}")
            added.append(until(pb, f"/api/items/{item}", 200))
            s, v = call(pb, "DELETE", f"/api/items/{item}", None, auth)
            if s != 200:
                sys.exit(f"remove through B: {s} {v[:300]!r}")
            removed.append(until(pa, f"/api/items/{item}", 404))
    finally:
        for proc, _ in servers:
            proc.kill()
            proc.wait()
    out = {"index": a.index, "follow_interval_s": a.follow_interval,
           "add_through_a_seen_by_b": summary(added),
           "remove_through_b_seen_by_a": summary(removed)}
    text = json.dumps(out)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
