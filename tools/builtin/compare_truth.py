#!/usr/bin/env python3
"""Compares an audit of the built-in model with its injected truth (docs/toy-model.md).

Usage: compare_truth.py TRUTH_CSV NAME=ANALYZE_DIR[:REPORT_DIR] ...  (stdlib only)
ANALYZE_DIR is a `fairdiff analyze --by-folder` output (detections.csv, one row per image or face); REPORT_DIR, when
given, a `fairdiff report --confusion ...` output whose tables/corrected.csv holds classifier-error-corrected shares.
Prints Markdown tables: face rate, per-prompt male share and race shares against the truth with 95% Wilson intervals
(raw) and the corrected shares' intervals, mean absolute error and interval coverage, and the truth-majority cell's
share (amplification by guidance).
"""
import csv
import math
import os
import sys
from collections import Counter, defaultdict

RACES = ["white", "black", "latino hispanic", "asian", "indian", "middle eastern"]


def norm_gender(g):
    g = g.strip().lower()
    if g in ("male", "man", "m"):
        return "Male"
    if g in ("female", "woman", "f"):
        return "Female"
    return ""


def norm_race(r):
    r = r.strip().lower().replace("_", " ")
    if r in ("east asian", "southeast asian"):
        return "asian"
    if r in ("latino", "latino_hispanic", "hispanic"):
        return "latino hispanic"
    return r if r in RACES else ""


def wilson(k, n, z=1.959964):
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def read_truth(path):
    truth = defaultdict(lambda: {"gender": Counter(), "race": Counter(), "cell": Counter(), "n": 0, "prompt": ""})
    for row in csv.DictReader(open(path)):
        t = truth[row["prompt_id"]]
        s = float(row["injected_share"])
        t["prompt"] = row["prompt"]
        t["gender"][row["gender"]] += s
        t["race"][row["race"]] += s
        t["cell"][(row["gender"], row["race"])] += s
    return truth


def read_detections(analyze_dir):
    """Per prompt: images, images with a face, and the first face's (gender, race) per image."""
    per = defaultdict(lambda: {"images": set(), "faces": {}})
    for row in csv.DictReader(open(os.path.join(analyze_dir, "detections.csv"))):
        p = per[row["prompt"]]
        p["images"].add(row["path"])
        g, r = norm_gender(row.get("gender", "")), norm_race(row.get("race", ""))
        if g and r and row["path"] not in p["faces"]:
            p["faces"][row["path"]] = (g, r)
    skipped = os.path.join(analyze_dir, "skipped.csv")
    if os.path.exists(skipped):
        for row in csv.DictReader(open(skipped)):
            if "prompt" in row and "path" in row:
                per[row["prompt"]]["images"].add(row["path"])
    return per


def read_corrected(report_dir, run):
    """{(prompt, attribute, label): (share, lo, hi)} of one run from a report's tables/corrected.csv."""
    path = os.path.join(report_dir, "tables", "corrected.csv")
    out = {}
    if not os.path.exists(path):
        return out
    for row in csv.DictReader(open(path)):
        if row["run"] != run:
            continue
        attr = row["attribute"]
        lab = norm_gender(row["group"]) if attr == "gender" else norm_race(row["group"])
        if lab:
            out[(row["prompt_id"], attr, lab)] = (float(row["corrected"]), float(row["corrected_low"]),
                                                  float(row["corrected_high"]))
    return out


def main():
    truth = read_truth(sys.argv[1])
    runs = []
    for arg in sys.argv[2:]:
        name, dirs = arg.split("=", 1)
        analyze_dir, _, report_dir = dirs.partition(":")
        runs.append((name, read_detections(analyze_dir), read_corrected(report_dir, name) if report_dir else {}))
    prompts = list(truth.keys())
    print("| run | images | with a face | face rate |\n|---|---|---|---|")
    for name, det, _ in runs:
        n = sum(len(det[p]["images"]) for p in prompts)
        f = sum(len(det[p]["faces"]) for p in prompts)
        print(f"| {name} | {n} | {f} | {100 * f / max(n, 1):.1f}% |")
    for name, det, corr in runs:
        print(f"\n### {name}\n")
        print("| prompt | faces | male: truth | male: measured [95% CI] | male: corrected [95% CI] |"
              + " top race (truth) | its truth share | measured [95% CI] | corrected [95% CI] |")
        print("|---|---|---|---|---|---|---|---|---|")
        errs = {"raw": [], "corr": []}
        cover = {"raw": [0, 0], "corr": [0, 0]}
        for p in prompts:
            t = truth[p]
            faces = list(det[p]["faces"].values())
            n = len(faces)
            gc = Counter(g for g, _ in faces)
            rc = Counter(r for _, r in faces)
            cells = [("gender", "Male", t["gender"]["Male"], gc["Male"])]
            cells += [("race", r, t["race"][r], rc[r]) for r in RACES]
            for attr, lab, ts, k in cells:
                lo, hi = wilson(k, n)
                if n:
                    errs["raw"].append(abs(k / n - ts))
                    cover["raw"][0] += lo <= ts <= hi
                    cover["raw"][1] += 1
                c = corr.get((p, attr, lab))
                if c:
                    errs["corr"].append(abs(c[0] - ts))
                    cover["corr"][0] += c[1] <= ts <= c[2]
                    cover["corr"][1] += 1
            top = max(RACES, key=lambda r: t["race"][r])

            def fmt(k, n):
                lo, hi = wilson(k, n)
                return f"{100 * k / max(n, 1):.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"

            def fmtc(attr, lab):
                c = corr.get((p, attr, lab))
                return f"{100 * c[0]:.0f}% [{100 * c[1]:.0f}, {100 * c[2]:.0f}]" if c else "-"

            print(f"| {p} | {n} | {100 * t['gender']['Male']:.0f}% | {fmt(gc['Male'], n)} | {fmtc('gender', 'Male')} |"
                  f" {top} | {100 * t['race'][top]:.0f}% | {fmt(rc[top], n)} | {fmtc('race', top)} |")
        for kind in ("raw", "corr"):
            if errs[kind]:
                print(f"\n{name} {kind}: mean absolute error {100 * sum(errs[kind]) / len(errs[kind]):.1f} points over"
                      f" {len(errs[kind])} shares (male share + 6 race shares per prompt); 95% intervals cover the truth"
                      f" {cover[kind][0]}/{cover[kind][1]} ({100 * cover[kind][0] / cover[kind][1]:.0f}%)")
    print("\n### The truth-majority gender x race cell per prompt\n")
    print("| prompt | majority cell | truth | " + " | ".join(name for name, _, _ in runs) + " |")
    print("|---|---|---|" + "---|" * len(runs))
    for p in prompts:
        t = truth[p]
        cell = max(t["cell"], key=lambda c: t["cell"][c])
        vals = []
        for _, det, _ in runs:
            faces = list(det[p]["faces"].values())
            vals.append(f"{100 * sum(1 for f in faces if f == cell) / max(len(faces), 1):.0f}%")
        print(f"| {p} | {cell[0]} {cell[1]} | {100 * t['cell'][cell]:.0f}% | " + " | ".join(vals) + " |")


if __name__ == "__main__":
    main()
