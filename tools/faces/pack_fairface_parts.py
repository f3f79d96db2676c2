#!/usr/bin/env python3
"""Packs the FairFace training photos into tar files small enough to travel to a GPU host one call at a time.

The device tool carries at most 64 MiB per call, the repository's tracked files included (about 29 MiB with
models/builtin, 6 MiB without), so the 39,460 photos train-classifier uses (232 MB) go in parts: the first one
small enough to travel with .deps (the build's .deb files and the npm face models), the others as large as the
rest of a call allows. Photos that --exclude would leave out (fairface_margin125's) are not packed.
Each part is OUT/pN/photos.tar with paths as the labels CSV names them (train/<n>.jpg); the last part also holds
the labels CSV and the exclusion CSV. On the host: tar -xf pN/photos.tar -C PHOTOS, for every part.

Usage: pack_fairface_parts.py FAIR_FACE_DIR LABELS_CSV EXCLUDE_CSV OUT_DIR [--first-mib 17] [--part-mib 56]
"""
import argparse
import csv
import os
import shutil
import tarfile


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fair_face", help="folder holding train/<n>.jpg (sumanvithaeadala/EthnicityDetection's fair_face)")
    ap.add_argument("labels", help="file,gender,race,age CSV (../shared/faces/fairface_train_labels.csv)")
    ap.add_argument("exclude", help="CSV whose fairface_file column lists photos to leave out")
    ap.add_argument("out", help="output folder (one pN subfolder per part)")
    ap.add_argument("--first-mib", type=float, default=17.0, help="size of the first part (travels with .deps)")
    ap.add_argument("--part-mib", type=float, default=56.0, help="size of every other part")
    a = ap.parse_args()

    with open(a.exclude, newline="") as f:
        excluded = {row["fairface_file"] for row in csv.DictReader(f)}
    with open(a.labels, newline="") as f:
        files = [row["file"] for row in csv.DictReader(f) if row["file"] not in excluded]
    for name in files:
        if not os.path.isfile(os.path.join(a.fair_face, name)):
            raise SystemExit(f"pack_fairface_parts: {os.path.join(a.fair_face, name)} is missing")

    parts, size, limit = [[]], 0, a.first_mib * 2**20
    for name in files:
        s = 512 + (os.path.getsize(os.path.join(a.fair_face, name)) + 511) // 512 * 512  # header + padded data
        if parts[-1] and size + s > limit:
            parts.append([])
            size, limit = 0, a.part_mib * 2**20
        parts[-1].append(name)
        size += s
    for i, names in enumerate(parts):
        folder = os.path.join(a.out, f"p{i}")
        os.makedirs(folder, exist_ok=True)
        with tarfile.open(os.path.join(folder, "photos.tar"), "w", format=tarfile.GNU_FORMAT) as tar:
            for name in names:
                tar.add(os.path.join(a.fair_face, name), arcname=name)
        print(f"p{i}: {len(names)} photos, {os.path.getsize(os.path.join(folder, 'photos.tar')) / 2**20:.1f} MiB")
    last = os.path.join(a.out, f"p{len(parts) - 1}")
    shutil.copy(a.labels, os.path.join(last, "fairface_train_labels.csv"))
    shutil.copy(a.exclude, os.path.join(last, "margin125_labels.csv"))
    print(f"{len(files)} photos in {len(parts)} parts ({len(excluded)} excluded); labels in {last}")


if __name__ == "__main__":
    main()
