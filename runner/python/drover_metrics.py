"""Report training metrics to Drover, or to stdout when Drover is not running the script.

An optional helper: it needs only Python's standard library (3.8+), and a script can always
print the lines itself instead (the format is documented in runner/src/metrics/metric-lines.ts).
Copy this file next to your script, or put its folder on PYTHONPATH.

Usage:

    from drover_metrics import log

    for step in range(1, steps + 1):
        loss, acc = train_step()
        if step % 10 == 0:
            log(step, loss=loss, acc=acc)
    log(step, val_loss=val_loss, val_acc=val_acc)
    log(lr=0.1)                                   # a metric without a step

Under Drover, $DROVER_METRICS names a file, and each call appends one JSON line to it:

    {"step": 10, "time": 1700000000.52, "loss": 0.52, "acc": 0.78}

Without it, each call prints the same record as a line on stdout, flushed at once:

    ::metric step=10 loss=0.52 acc=0.78

Only one of the two is written, so Drover never counts a record twice, and the same script runs
unchanged with and without Drover.

Metric names match [A-Za-z_][A-Za-z0-9_./-]* ("loss", "train/acc", "lr.group-0"); `step` and
`time` are reserved. Values are numbers: ints, floats, and anything float() takes (NumPy
scalars, one-element tensors), but not strings or booleans. `step` is None or an integer >= 0.
Anything else raises ValueError before anything is written: those are mistakes in the script.

A NaN or infinite value is not one: a diverging loss must not end the training. It is left out
of the record (the call writes the other metrics, or nothing if none is left), and stderr says
so once per metric name.
"""

import json
import math
import numbers
import os
import re
import sys
import time

__all__ = ["log"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*\Z")
_RESERVED = ("step", "time")
# Metrics already said on stderr to have had a NaN or infinite value.
_warned = set()


def log(step=None, **metrics):
    """Record `metrics` (name=value keywords) at `step`; see the module docstring."""
    step = _check_step(step)
    if not metrics:
        raise ValueError("drover_metrics.log() needs at least one metric, e.g. log(step, loss=0.5)")
    values = [(name, _check_value(name, value)) for name, value in metrics.items()]
    for name, value in values:
        if not _finite(value) and name not in _warned:
            _warned.add(name)
            sys.stderr.write("drover_metrics: %s is %r at step %s; NaN and infinite values are left out (said once per metric)\n" % (name, value, step))
    values = [(name, value) for name, value in values if _finite(value)]
    if not values:
        return

    path = os.environ.get("DROVER_METRICS")
    if path:
        record = {"step": step, "time": time.time()}
        record.update(values)
        _append(path, json.dumps(record, allow_nan=False) + "\n")
    else:
        pairs = ["%s=%r" % (name, value) for name, value in values]  # repr: shortest exact form
        if step is not None:
            pairs.insert(0, "step=%d" % step)
        print("::metric " + " ".join(pairs), flush=True)


def _check_step(step):
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValueError("drover_metrics: step must be an integer >= 0 or None, got %r" % (step,))
    if step < 0:
        raise ValueError("drover_metrics: step must be an integer >= 0 or None, got %d" % step)
    return int(step)


def _check_value(name, value):
    if not _NAME.match(name):
        raise ValueError("drover_metrics: metric name %r must match [A-Za-z_][A-Za-z0-9_./-]*" % name)
    if name in _RESERVED:
        raise ValueError("drover_metrics: %r is reserved and cannot be a metric name" % name)
    # bool is an int, and str would pass float(); both are almost surely mistakes.
    if isinstance(value, (bool, str, bytes)):
        raise ValueError("drover_metrics: metric %r must be a number, got %r" % (name, value))
    if isinstance(value, numbers.Integral):
        return int(value)  # kept exact, not turned into a float
    try:
        number = float(value)
    except Exception:  # whatever float() raises (TypeError, ValueError, a tensor's RuntimeError)
        raise ValueError("drover_metrics: metric %r must be a number, got %r" % (name, value)) from None
    return number


def _finite(value):
    # An int is exact and finite, however large (math.isfinite would overflow on it).
    return isinstance(value, int) or math.isfinite(value)


def _append(path, line):
    # One write() on an O_APPEND descriptor: records from several processes (data-loader
    # workers, one per rank) never interleave, and nothing stays buffered if the script dies.
    # Opening per call keeps no state to go stale across fork() or a change of $DROVER_METRICS.
    data = line.encode("utf-8")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o666)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)

