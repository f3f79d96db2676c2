#!/usr/bin/env python3
"""Markdown tables for docs/classifiers.md from `fairdiff eval-classifier --json` reports.

    python3 tools/faces/classifier_tables.py NAME=REPORT.json [NAME=REPORT.json ...]

Prints, for the reports given (e.g. default-utk=r1.json gear-utk=r2.json): a summary row per report
(n, detection, gender accuracy, race accuracy and taxonomy, ECE, images/s), the race recall per class, and
gender / race accuracy per race x gender group. Standard library only.
"""
import json
import sys


def pct(value):
    return "" if value is None else f"{100 * value:.1f}%"


def main():
    reports = []
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        if not path:
            sys.exit(f"expected NAME=REPORT.json, got {arg!r}")
        with open(path) as f:
            reports.append((name, json.load(f)))
    if not reports:
        sys.exit(__doc__)

    print("| report | n | detection | gender | race | race taxonomy | ECE gender / race | images/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in reports:
        print(f"| {name} | {r['n']} | {pct(r['detection_rate'])} | {pct(r['gender']['accuracy'])} | "
              f"{pct(r['race']['accuracy'])} | {r['race']['taxonomy']} | "
              f"{pct(r['gender'].get('ece'))} / {pct(r['race'].get('ece'))} | {r['images_per_s']:.1f} |")

    for name, r in reports:
        labels = r["race"]["labels"]
        print(f"\n{name}: race recall per class (rows of the confusion matrix; n = photos of that class)\n")
        print("| class | n | recall | most often taken for |")
        print("|---|---|---|---|")
        for i, label in enumerate(labels):
            row = r["race"]["confusion"][i]
            n = sum(row)
            if n == 0:
                continue
            others = [(count, labels[j]) for j, count in enumerate(row) if j != i and count > 0]
            confused = max(others)[1] if others else ""
            print(f"| {label} | {n} | {pct(row[i] / n)} | {confused} |")
        print(f"\n{name}: per race x gender group\n")
        print("| group | n | detection | gender accuracy | race accuracy |")
        print("|---|---|---|---|---|")
        for group, g in sorted(r["groups"].items()):
            print(f"| {group} | {g['n']} | {pct(g['detection_rate'])} | {pct(g.get('gender_accuracy'))} | "
                  f"{pct(g.get('race_accuracy'))} |")


if __name__ == "__main__":
    main()
