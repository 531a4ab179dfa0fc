"""Train a tiny MLP classifier on the synthetic two-moons data (see data.py).

A real, if small, training job for trying Drover on any machine: it needs only
Python 3's standard library and finishes in a second or two on one CPU core.
When PyTorch can be imported it trains the same model with torch instead (on a
GPU when one is visible); `--backend python` forces the standard-library path.

The model is 2 inputs -> `--hidden` tanh units -> 1 logit, trained with
mini-batch SGD with momentum on the binary cross-entropy loss. Inputs are standardized with
the training split's mean and standard deviation.

Metrics go to stdout as lines of this form, flushed as they are written:

    ::metric step=<int> loss=<float> acc=<float>          every --log-every steps
    ::metric step=<int> val_loss=<float> val_acc=<float>  after each epoch

A line starts with "::metric " and carries name=value pairs separated by single
spaces; `step` is the number of SGD updates so far. Training loss and accuracy
are averages over the samples seen since the previous training line.

When the environment variable DROVER_METRICS names a file (Drover sets it), each
record goes there instead, as one JSON object per line, e.g.
{"step": 10, "loss": 0.52, "acc": 0.78}: full precision, and never counted twice.

Outputs, in --out (default outputs/):
    model.json    the weights, the input standardization and what produced them
    metrics.json  the final metrics

Example:
    python3 train.py --lr 0.1 --seed 1 --epochs 20 --out outputs/run1
"""

import argparse
import json
import math
import os
import random
import sys
import time

import data

MODEL_FORMAT = "drover-example-mlp/1"


# --------------------------------------------------------------------------- metrics

def emit_metric(step, **values):
    """Report one record: to $DROVER_METRICS when set, else as a `::metric` line on stdout."""
    path = os.environ.get("DROVER_METRICS")
    if path:
        record = {"step": step}
        record.update(values)
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return
    fields = " ".join("%s=%s" % (name, format_value(v)) for name, v in values.items())
    print("::metric step=%d %s" % (step, fields), flush=True)


def format_value(value):
    if isinstance(value, float):
        return "%.6g" % value
    return str(value)


# --------------------------------------------------------------------------- model math

def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def bce_with_logit(z, y):
    """Binary cross-entropy of label y (0 or 1) given logit z, without overflow."""
    return max(z, 0.0) - z * y + math.log1p(math.exp(-abs(z)))


def forward(weights, x):
    """Logit of the MLP in `weights` (W1, b1, w2, b2) for a standardized input x."""
    hidden = [math.tanh(b + sum(w_i * x_i for w_i, x_i in zip(row, x)))
              for row, b in zip(weights["W1"], weights["b1"])]
    return weights["b2"] + sum(w * h for w, h in zip(weights["w2"], hidden))


def standardize(x, mean, std):
    return [(v - m) / s for v, m, s in zip(x, mean, std)]


def fit_standardizer(rows):
    """Per-feature mean and standard deviation of (x1, x2, label) rows."""
    columns = list(zip(*[row[:-1] for row in rows]))
    mean = [sum(c) / len(c) for c in columns]
    std = [math.sqrt(sum((v - m) ** 2 for v in c) / len(c)) or 1.0
           for c, m in zip(columns, mean)]
    return mean, std


# --------------------------------------------------------------------------- backends

class PythonMLP:
    """The MLP in plain Python lists; gradients written out by hand."""

    name = "python"
    device = "cpu"

    def __init__(self, input_dim, hidden, lr, momentum, seed):
        rng = random.Random(seed)
        # The same uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) init as torch.nn.Linear.
        b_in, b_hid = 1.0 / math.sqrt(input_dim), 1.0 / math.sqrt(hidden)
        self.W1 = [[rng.uniform(-b_in, b_in) for _ in range(input_dim)] for _ in range(hidden)]
        self.b1 = [rng.uniform(-b_in, b_in) for _ in range(hidden)]
        self.w2 = [rng.uniform(-b_hid, b_hid) for _ in range(hidden)]
        self.b2 = rng.uniform(-b_hid, b_hid)
        self.lr, self.momentum = lr, momentum
        # Velocities, updated as torch.optim.SGD does: v = momentum * v + grad; p -= lr * v.
        self.vW1 = [[0.0] * input_dim for _ in range(hidden)]
        self.vb1 = [0.0] * hidden
        self.vw2 = [0.0] * hidden
        self.vb2 = 0.0

    def train_batch(self, xs, ys):
        """One SGD step on the mean loss of the batch; returns (loss sum, correct count)."""
        gW1 = [[0.0] * len(row) for row in self.W1]
        gb1 = [0.0] * len(self.b1)
        gw2 = [0.0] * len(self.w2)
        gb2 = 0.0
        loss_sum, correct = 0.0, 0
        for x, y in zip(xs, ys):
            h = [math.tanh(b + sum(w_i * x_i for w_i, x_i in zip(row, x)))
                 for row, b in zip(self.W1, self.b1)]
            z = self.b2 + sum(w * h_j for w, h_j in zip(self.w2, h))
            loss_sum += bce_with_logit(z, y)
            correct += (z > 0) == (y == 1)
            dz = sigmoid(z) - y                      # d loss / d logit
            gb2 += dz
            for j, h_j in enumerate(h):
                gw2[j] += dz * h_j
                dpre = dz * self.w2[j] * (1.0 - h_j * h_j)   # through tanh
                gb1[j] += dpre
                g_row = gW1[j]
                for i, x_i in enumerate(x):
                    g_row[i] += dpre * x_i
        n, mu, lr = len(xs), self.momentum, self.lr
        for row, v_row, g_row in zip(self.W1, self.vW1, gW1):
            for i, g in enumerate(g_row):
                v_row[i] = mu * v_row[i] + g / n
                row[i] -= lr * v_row[i]
        for j in range(len(self.b1)):
            self.vb1[j] = mu * self.vb1[j] + gb1[j] / n
            self.b1[j] -= lr * self.vb1[j]
            self.vw2[j] = mu * self.vw2[j] + gw2[j] / n
            self.w2[j] -= lr * self.vw2[j]
        self.vb2 = mu * self.vb2 + gb2 / n
        self.b2 -= lr * self.vb2
        return loss_sum, correct

    def evaluate(self, xs, ys):
        """(mean loss, accuracy) on the given inputs, without training."""
        weights = self.export()
        loss_sum, correct = 0.0, 0
        for x, y in zip(xs, ys):
            z = forward(weights, x)
            loss_sum += bce_with_logit(z, y)
            correct += (z > 0) == (y == 1)
        return loss_sum / len(ys), correct / len(ys)

    def export(self):
        return {"W1": self.W1, "b1": self.b1, "w2": self.w2, "b2": self.b2}


class TorchMLP:
    """The same MLP in PyTorch: nn.Linear -> tanh -> nn.Linear, torch.optim.SGD."""

    name = "torch"

    def __init__(self, input_dim, hidden, lr, momentum, seed):
        import torch
        self.torch = torch
        torch.manual_seed(seed)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.net = torch.nn.Sequential(
            torch.nn.Linear(input_dim, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, 1),
        ).to(self.device)
        self.loss_sum_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=momentum)

    def _tensors(self, xs, ys):
        torch = self.torch
        x = torch.tensor(xs, dtype=torch.float32, device=self.device)
        y = torch.tensor(ys, dtype=torch.float32, device=self.device)
        return x, y

    def train_batch(self, xs, ys):
        x, y = self._tensors(xs, ys)
        self.net.train()
        logits = self.net(x).squeeze(1)
        loss_sum = self.loss_sum_fn(logits, y)
        self.optimizer.zero_grad()
        (loss_sum / len(ys)).backward()
        self.optimizer.step()
        correct = ((logits > 0).float() == y).sum().item()
        return loss_sum.item(), int(correct)

    def evaluate(self, xs, ys):
        x, y = self._tensors(xs, ys)
        self.net.eval()
        with self.torch.no_grad():
            logits = self.net(x).squeeze(1)
            loss = self.loss_sum_fn(logits, y).item() / len(ys)
            acc = ((logits > 0).float() == y).float().mean().item()
        return loss, acc

    def export(self):
        first, last = self.net[0], self.net[2]
        return {
            "W1": first.weight.detach().cpu().tolist(),
            "b1": first.bias.detach().cpu().tolist(),
            "w2": last.weight.detach().cpu()[0].tolist(),
            "b2": last.bias.detach().cpu().item(),
        }


def choose_backend(requested):
    """The backend class for --backend: with "auto", torch when it imports, else Python."""
    if requested == "python":
        return PythonMLP
    try:
        import torch  # noqa: F401  (only probing whether it is installed)
    except ImportError:
        if requested == "torch":
            raise SystemExit("train.py: --backend torch, but `import torch` fails; "
                             "install PyTorch or use --backend python")
        return PythonMLP
    return TorchMLP


# --------------------------------------------------------------------------- checkpoints

def load_model(path):
    """Read a model.json written by this script."""
    with open(path) as f:
        model = json.load(f)
    if model.get("format") != MODEL_FORMAT:
        raise ValueError("%s: not a model written by train.py (format %r, expected %r)"
                         % (path, model.get("format"), MODEL_FORMAT))
    return model


def predict_logit(model, x):
    """Logit for a raw (unstandardized) input x under a loaded model.json."""
    return forward(model["weights"], standardize(x, model["mean"], model["std"]))


def evaluate_rows(model, rows):
    """Loss, accuracy and confusion counts of a loaded model on (x1, x2, label) rows."""
    confusion = [[0, 0], [0, 0]]   # confusion[true label][predicted label]
    loss_sum = 0.0
    for row in rows:
        x, y = row[:-1], row[-1]
        z = predict_logit(model, x)
        loss_sum += bce_with_logit(z, y)
        confusion[y][1 if z > 0 else 0] += 1
    correct = confusion[0][0] + confusion[1][1]
    return {"loss": loss_sum / len(rows), "acc": correct / len(rows), "confusion": confusion}


# --------------------------------------------------------------------------- training

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train a tiny MLP on synthetic two-moons data; prints ::metric lines.")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the weight init and batch order (default 0)")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training split")
    parser.add_argument("--samples", type=int, default=2000,
                        help="size of the generated dataset, all splits (default 2000)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="seed of the generated dataset (default 0)")
    parser.add_argument("--noise", type=float, default=0.2,
                        help="Gaussian noise of the generated points (default 0.2)")
    parser.add_argument("--hidden", type=int, default=16, help="hidden tanh units (default 16)")
    parser.add_argument("--momentum", type=float, default=0.9,
                        help="SGD momentum, as in torch.optim.SGD (default 0.9)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--log-every", type=int, default=10,
                        help="print a training ::metric line every N steps (default 10)")
    parser.add_argument("--features", default=None,
                        help="CSV written by featurize.py; used instead of generating data")
    parser.add_argument("--out", default="outputs/", help="output folder (default outputs/)")
    parser.add_argument("--backend", choices=["auto", "python", "torch"], default="auto",
                        help="auto: torch when importable, else the standard-library path")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress and no ::metric lines (for use from a notebook)")
    args = parser.parse_args(argv)
    for name in ("epochs", "hidden", "batch_size", "log_every"):
        if getattr(args, name) < 1:
            parser.error("--%s must be at least 1" % name.replace("_", "-"))
    if args.lr <= 0:
        parser.error("--lr must be positive")
    if not 0 <= args.momentum < 1:
        parser.error("--momentum must be in [0, 1)")
    if args.features is None and args.samples < 20:
        parser.error("--samples must be at least 20")
    return args


def load_data(args):
    """The train/val/test splits and a description of where they came from."""
    if args.features:
        splits = data.load_features(args.features)
        source = {"source": "features", "path": args.features}
    else:
        splits = data.make_splits(args.samples, args.data_seed, args.noise)
        source = {"source": "generated", "samples": args.samples,
                  "seed": args.data_seed, "noise": args.noise}
    for name in ("train", "val"):
        if not splits[name]:
            raise ValueError("the %s split is empty" % name)
    return splits, source


def main(argv=None):
    args = parse_args(argv)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    metric = (lambda *a, **k: None) if args.quiet else emit_metric
    started = time.time()

    try:
        splits, source = load_data(args)
    except (OSError, ValueError) as e:
        print("train.py: cannot load the data: %s" % e, file=sys.stderr)
        return 2
    mean, std = fit_standardizer(splits["train"])
    train_x = [standardize(row[:-1], mean, std) for row in splits["train"]]
    train_y = [row[-1] for row in splits["train"]]
    val_x = [standardize(row[:-1], mean, std) for row in splits["val"]]
    val_y = [row[-1] for row in splits["val"]]

    backend = choose_backend(args.backend)
    model = backend(len(train_x[0]), args.hidden, args.lr, args.momentum, args.seed)
    say("train.py: %d train / %d val samples, %s backend on %s, lr=%g hidden=%d seed=%d"
        % (len(train_x), len(val_x), model.name, model.device, args.lr, args.hidden, args.seed))

    order_rng = random.Random(args.seed)
    order = list(range(len(train_x)))
    step = 0
    window_loss, window_correct, window_seen = 0.0, 0, 0
    epoch_loss, epoch_correct = 0.0, 0
    for epoch in range(1, args.epochs + 1):
        order_rng.shuffle(order)
        epoch_loss, epoch_correct = 0.0, 0
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            loss_sum, correct = model.train_batch([train_x[i] for i in batch],
                                                  [train_y[i] for i in batch])
            if not math.isfinite(loss_sum):
                print("train.py: the loss diverged at step %d; try a smaller --lr" % (step + 1),
                      file=sys.stderr)
                return 1
            step += 1
            window_loss += loss_sum
            window_correct += correct
            window_seen += len(batch)
            epoch_loss += loss_sum
            epoch_correct += correct
            if step % args.log_every == 0:
                metric(step, loss=window_loss / window_seen, acc=window_correct / window_seen)
                window_loss, window_correct, window_seen = 0.0, 0, 0
        val_loss, val_acc = model.evaluate(val_x, val_y)
        metric(step, val_loss=val_loss, val_acc=val_acc)
        say("epoch %d/%d  loss %.4f  acc %.3f  val_loss %.4f  val_acc %.3f  (%.1fs)"
            % (epoch, args.epochs, epoch_loss / len(train_x), epoch_correct / len(train_x),
               val_loss, val_acc, time.time() - started))

    params = {"lr": args.lr, "momentum": args.momentum, "seed": args.seed,
              "epochs": args.epochs, "hidden": args.hidden, "batch_size": args.batch_size}
    checkpoint = {
        "format": MODEL_FORMAT,
        "backend": model.name,
        "input_dim": len(train_x[0]),
        "hidden": args.hidden,
        "mean": mean,
        "std": std,
        "weights": model.export(),
        "data": source,
        "params": params,
    }
    final = {
        "step": step,
        "loss": epoch_loss / len(train_x),
        "acc": epoch_correct / len(train_x),
        "val_loss": val_loss,
        "val_acc": val_acc,
        "seconds": round(time.time() - started, 3),
        "backend": model.name,
        "device": model.device,
        "params": params,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(checkpoint, f)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(final, f, indent=2)
        f.write("\n")
    say("train.py: done in %.1fs, val_acc %.3f; wrote %s and %s"
        % (final["seconds"], val_acc, os.path.join(args.out, "model.json"),
           os.path.join(args.out, "metrics.json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
