"""Write the synthetic two-moons dataset (see data.py) to a CSV features file.

The first step of the nightly workflow: train.py --features PATH then trains on
exactly these rows instead of generating its own. The file has the columns
x1, x2, label, split, with split one of train, val, test.

Reports, on stdout, in the same `::metric` form as train.py:

    ::metric step=0 rows=<int> train_rows=<int> val_rows=<int> test_rows=<int>

and announces the file it wrote with a line `::output features=<path>`, for a
runner that collects a job's declared outputs from its stdout.

Standard library only. Example:
    python3 featurize.py --samples 2000 --seed 0 --out outputs/features.csv
"""

import argparse
import os
import sys

import data
from train import emit_metric


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write the two-moons dataset as CSV.")
    parser.add_argument("--samples", type=int, default=2000, help="rows in all (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--noise", type=float, default=0.2,
                        help="Gaussian noise of the points (default 0.2)")
    parser.add_argument("--out", default="outputs/features.csv",
                        help="CSV file to write (default outputs/features.csv)")
    args = parser.parse_args(argv)
    if args.samples < 20:
        parser.error("--samples must be at least 20")

    splits = data.make_splits(args.samples, args.seed, args.noise)
    folder = os.path.dirname(args.out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a file.
    partial = args.out + ".partial"
    data.write_features(partial, splits)
    os.replace(partial, args.out)

    counts = {name: len(splits[name]) for name in data.SPLITS}
    print("featurize.py: wrote %d rows (%s) to %s"
          % (sum(counts.values()),
             ", ".join("%d %s" % (n, name) for name, n in counts.items()), args.out),
          flush=True)
    emit_metric(0, rows=sum(counts.values()), train_rows=counts["train"],
                val_rows=counts["val"], test_rows=counts["test"])
    print("::output features=%s" % args.out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
