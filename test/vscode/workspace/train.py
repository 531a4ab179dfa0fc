"""A stand-in training script for the extension tests: reports metrics in Drover's `::metric` form."""
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

loss = 1.0
for step in range(1, 4):
    loss *= 1.0 - min(args.lr * 100, 0.5)
    print(f"::metric step={step} loss={loss:.4f}", flush=True)
