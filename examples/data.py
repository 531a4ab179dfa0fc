"""Synthetic "two moons" dataset shared by featurize.py, train.py and eval.ipynb.

Two interleaving half circles in the plane, one per class, blurred with Gaussian
noise. A straight line separates them only partly (about 85 % accuracy), so a
model that bends its decision boundary visibly does better.

Everything is deterministic for a given seed: the same (samples, seed, noise)
always yields the same points and the same train/val/test split, in any Python 3.

Standard library only.
"""

import csv
import math
import random

SPLITS = ("train", "val", "test")
# Fractions of the samples that go to each split; the test split takes the rest.
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.15}
FEATURES_HEADER = ["x1", "x2", "label", "split"]


def generate(samples=2000, seed=0, noise=0.2):
    """Return `samples` rows of (x1, x2, label), classes balanced and shuffled."""
    rng = random.Random(seed)
    rows = []
    for i in range(samples):
        label = i % 2
        angle = rng.uniform(0.0, math.pi)
        if label == 0:
            x1, x2 = math.cos(angle), math.sin(angle)
        else:
            x1, x2 = 1.0 - math.cos(angle), 0.5 - math.sin(angle)
        rows.append((x1 + rng.gauss(0.0, noise), x2 + rng.gauss(0.0, noise), label))
    rng.shuffle(rows)
    return rows


def split(rows):
    """Cut already-shuffled rows into {"train": [...], "val": [...], "test": [...]}."""
    n_train = int(len(rows) * SPLIT_FRACTIONS["train"])
    n_val = int(len(rows) * SPLIT_FRACTIONS["val"])
    return {
        "train": rows[:n_train],
        "val": rows[n_train:n_train + n_val],
        "test": rows[n_train + n_val:],
    }


def make_splits(samples=2000, seed=0, noise=0.2):
    """generate() followed by split()."""
    return split(generate(samples, seed, noise))


def write_features(path, splits):
    """Write the splits as CSV with the columns x1, x2, label, split."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FEATURES_HEADER)
        for name in SPLITS:
            for x1, x2, label in splits[name]:
                writer.writerow([repr(x1), repr(x2), label, name])


def load_features(path):
    """Read a CSV written by write_features() back into the splits dict."""
    splits = {name: [] for name in SPLITS}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in FEATURES_HEADER if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError("%s: missing column(s) %s; expected header %s"
                             % (path, ", ".join(missing), ",".join(FEATURES_HEADER)))
        for line, record in enumerate(reader, start=2):
            name = record["split"]
            if name not in splits:
                raise ValueError("%s:%d: unknown split %r (expected one of %s)"
                                 % (path, line, name, ", ".join(SPLITS)))
            splits[name].append((float(record["x1"]), float(record["x2"]), int(record["label"])))
    return splits
