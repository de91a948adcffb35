#!/usr/bin/env python3
"""Batch against single searches over HTTP, measured in the same run.

    bench/batch.py --url http://127.0.0.1:8080 --photos DIR [--n 16] [--rounds 5]

Sends the first N photos of DIR as N `POST /api/search` requests one after another, then
as one `POST /api/search/batch`, alternating, ROUNDS times; prints the median wall time
of each and their ratio, and counts the answers whose ids differ between the two.
Python's standard library only.
"""
import argparse
import json
import os
import statistics
import time
import urllib.request
import uuid


def multipart(fields):
    boundary = uuid.uuid4().hex
    body = b""
    for name, value, filename in fields:
        body += f"--{boundary}\r\n".encode()
        if filename:
            body += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
        else:
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        body += value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(url, fields):
    body, ctype = multipart(fields)
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--photos", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    names = sorted(os.listdir(a.photos))[: a.n]
    photos = [(n, open(os.path.join(a.photos, n), "rb").read()) for n in names]
    singles, batches, differ = [], [], 0
    for _ in range(a.rounds):
        t = time.perf_counter()
        one = [post(a.url + "/api/search", [("image", b, n), ("k", b"5", None)]) for n, b in photos]
        singles.append(time.perf_counter() - t)
        t = time.perf_counter()
        many = post(a.url + "/api/search/batch", [("image", b, n) for n, b in photos] + [("k", b"5", None)])
        batches.append(time.perf_counter() - t)
        ids = lambda r: [h["id"] for h in r["results"]]
        differ += sum(ids(x) != ids(y) for x, y in zip(one, many["batches"]))
    s, b = statistics.median(singles), statistics.median(batches)
    print(json.dumps({"photos": len(photos), "rounds": a.rounds, "single_s": s, "batch_s": b,
                      "batch_vs_single": b / s, "answers_that_differ": differ}, indent=2))


if __name__ == "__main__":
    main()
