#!/usr/bin/env python3
"""Calibrate and measure the "no close match" floor on street photos.

    bench/close_match.py --bin target/release/lookalike --index IDX44K \
        --queries ../shared/data/street-photos/queries.csv [--out target/bench/close-match.json]

Searches the street photos the model never trained on (the test part: file names whose
blake3 bucket is below 30, as `split::query_in_test`) with default settings, and splits
them again by the same bucket: below 15 calibrates the floor (the best result's score
below which a query is flagged), 15..29 reports it. The floor is the one that flags the
most calibration queries with no correct item in their top 5 while flagging at most 15 %
of the others. The floor belongs to what embeds the queries (`--query-precision`, as
`search`'s: the fp32 model or its int8 twin). Needs Python 3 and the `blake3` package (as
training/ does).
"""
import argparse
import csv
import json
import os
import subprocess
import sys

import blake3


def bucket(name):
    return int.from_bytes(blake3.blake3(name.encode()).digest()[:8], "little") % 100


def rates(rows, floor):
    bad = [r for r in rows if not r["right"]]
    good = [r for r in rows if r["right"]]
    flagged = lambda r: r["top"] < floor
    return {
        "queries": len(rows),
        "nothing_right": len(bad),
        "flagged_nothing_right": sum(map(flagged, bad)),
        "flagged_right": sum(map(flagged, good)),
        "share_of_nothing_right_flagged": sum(map(flagged, bad)) / max(1, len(bad)),
        "share_of_right_flagged": sum(map(flagged, good)) / max(1, len(good)),
        # Queries shown as matches (not flagged) that have nothing right, of all queries.
        "unflagged_nothing_right": sum(1 for r in bad if not flagged(r)) / max(1, len(rows)),
        "nothing_right_before": len(bad) / max(1, len(rows)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/lookalike")
    ap.add_argument("--index", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--max-flag-right", type=float, default=0.15)
    ap.add_argument("--out")
    ap.add_argument("--query-precision", default="auto", choices=("auto", "fp32", "int8"),
                    help="what embeds the query photos (`search --query-precision`): a floor "
                         "belongs to one; auto picks by the CPU, so name it to calibrate either")
    a = ap.parse_args()
    images = os.path.join(os.path.dirname(a.queries), "images")
    rows = [r for r in csv.DictReader(open(a.queries)) if bucket(r["file"]) < 30]
    paths = [os.path.join(images, r["file"]) for r in rows]
    out = subprocess.run([a.bin, "search", "--index", a.index, "--json",
                          "--query-precision", a.query_precision, *paths],
                         check=True, capture_output=True, text=True).stdout
    answers = {os.path.basename(json.loads(l)["query"]): json.loads(l) for l in out.splitlines() if l.strip()}
    data = []
    for r in rows:
        ans = answers[r["file"]]
        match = set(r["match_article_types"].split("|"))
        hits = ans["results"]
        data.append({
            "file": r["file"],
            "right": any(h["metadata"].get("articleType") in match for h in hits),
            "top": hits[0]["score"] if hits else -1.0,
            "flagged_by_engine": ans.get("no_close_match", False),
            "part": "calibrate" if bucket(r["file"]) < 15 else "report",
        })
    cal = [d for d in data if d["part"] == "calibrate"]
    rep = [d for d in data if d["part"] == "report"]
    best = None
    for i in range(0, 101):
        floor = round(0.4 + i * 0.005, 3)
        r = rates(cal, floor)
        if r["share_of_right_flagged"] <= a.max_flag_right:
            key = (r["share_of_nothing_right_flagged"], -r["share_of_right_flagged"])
            if best is None or key > best[0]:
                best = (key, floor)
    floor = best[1]
    shipped = [d for d in rep]
    result = {
        "query_precision": a.query_precision,
        "floor": floor,
        "calibrate": rates(cal, floor),
        "report": rates(rep, floor),
        # What the shipped engine flagged on the report half (its own floor).
        "report_engine_flagged": sum(d["flagged_by_engine"] for d in shipped),
    }
    print(json.dumps(result, indent=2))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
