"""Run a Jupyter notebook cell by cell for Drover, on this host's own kernel.

The runner starts this script for a notebook job (locally, or shipped into the attempt's folder
on an SSH host). It needs Python 3.8+ with Jupyter's nbclient, nbformat and ipykernel.

    python3 drover_notebook.py NOTEBOOK --events EVENTS.jsonl --output EXECUTED.ipynb

- EVENTS gets one JSON line per event, appended and flushed as it happens, which the runner
  streams back like a log (`time` is seconds since the epoch; `cell` is the cell's index in
  NOTEBOOK):

      {"event": "begin", "time": ..., "cells": [1, 2, 4], "kernel": "python3", "params": {...}}
      {"event": "start", "cell": 2, "time": ...}            (injected: true for the parameters)
      {"event": "output", "cell": 2, "time": ..., "output": {nbformat output}}
      {"event": "outputs", "cell": 2, "time": ..., "outputs": [...]}   (all of them, after a clear
                                                                      or an updated display)
      {"event": "metrics", "cell": 2, "time": ..., "lines": ["{...}"]}  ($DROVER_METRICS records)
      {"event": "finish", "cell": 2, "time": ..., "status": "ok" | "error", "executionCount": 3}
      {"event": "end", "time": ..., "status": "ok" | "error"}

- EXECUTED is the notebook with its outputs, rewritten after each cell.
- $DROVER_NOTEBOOK_PARAMS (a JSON object) becomes a cell injected after the cell tagged
  `parameters` (at the top when there is none), as papermill does, so a notebook is swept like
  a script.
- $DROVER_NOTEBOOK_CELLS picks the code cells to run: `2,5` (those), `3-` (from 3 down).
- Cell output on stdout and stderr is echoed to this script's own, so the run's log reads like
  a script's and `::metric` lines printed by a cell are the run's metrics.
- A failing cell ends the run: its traceback is on that cell's events, and the exit code is 1.
"""

import json
import os
import socket
import sys
import time

INSTALL_HINT = (
    "Debian/Ubuntu: sudo apt install python3-nbclient python3-ipykernel; "
    "pip: python3 -m pip install nbclient ipykernel"
)


def fail(message, code=2):
    sys.stderr.write("drover: %s\n" % message)
    sys.stderr.flush()
    sys.exit(code)


try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError
except ImportError as error:
    fail(
        "running a notebook needs Jupyter's nbclient and ipykernel for %s on %s (%s): install them (%s)"
        % (sys.executable, socket.gethostname(), error, INSTALL_HINT)
    )


class EventLog:
    """Appends one JSON line per event; one write() each, so a reader never sees half a line."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, event, **fields):
        record = {"event": event, "time": time.time()}
        record.update(fields)
        data = (json.dumps(record, default=str) + "\n").encode("utf-8")
        while data:
            data = data[os.write(self.fd, data):]


class MetricsTail:
    """The records a cell appended to $DROVER_METRICS, read as they come, to credit that cell."""

    def __init__(self, path):
        self.path = path
        self.offset = os.path.getsize(path) if path and os.path.exists(path) else 0
        self.partial = b""

    def new_lines(self):
        if not self.path or not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        return [line.decode("utf-8", "replace") for line in lines if line.strip()]


def parse_selection(text, code_cells):
    """The code cells $DROVER_NOTEBOOK_CELLS names, or all of them."""
    if not text or not text.strip():
        return list(code_cells)
    text = text.strip()
    try:
        if text.endswith("-"):
            first = int(text[:-1])
            return [index for index in code_cells if index >= first]
        wanted = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        fail("DROVER_NOTEBOOK_CELLS must be cell numbers like '2,5' or '3-', not %r" % text)
    return [index for index in code_cells if index in wanted]


def parameters_cell(params, language):
    lines = ["# Parameters injected by Drover"]
    for name, value in params.items():
        if not name.isidentifier():
            fail("parameter %r is not a Python name, so it cannot be set in the notebook" % name)
        lines.append("%s = %r" % (name, value) if language == "python" else "%s = %s" % (name, json.dumps(value)))
    cell = nbformat.v4.new_code_cell("\n".join(lines) + "\n")
    cell.metadata["tags"] = ["injected-parameters"]
    return cell


def coalesce_streams(outputs):
    """Joins consecutive stream outputs of one stream, as Jupyter shows them."""
    merged = []
    for output in outputs:
        last = merged[-1] if merged else None
        if last is not None and output.get("output_type") == "stream" and last.get("output_type") == "stream" and last.get("name") == output.get("name"):
            last["text"] = last["text"] + output["text"]
        else:
            merged.append(output)
    return merged


class CellDriver(NotebookClient):
    """An nbclient client that reports each cell's start, outputs and end as they happen."""

    def __init__(self, nb, events, metrics, cell_fields, **kwargs):
        super().__init__(nb, **kwargs)
        self.events = events
        self.metrics = metrics
        self.cell_fields = cell_fields

    def output(self, outs, msg, display_id, cell_index):
        # A clear_output(wait=True) takes effect with the next output: then the whole list is news.
        clearing = self.clear_before_next_output
        out = super().output(outs, msg, display_id, cell_index)
        if out is not None:
            if clearing:
                self.events.write("outputs", outputs=list(outs), **self.cell_fields(cell_index))
            else:
                self.events.write("output", output=out, **self.cell_fields(cell_index))
            echo(out)
            self.report_metrics(cell_index)
        return out

    def clear_output(self, outs, msg, cell_index):
        super().clear_output(outs, msg, cell_index)
        if not self.clear_before_next_output:
            self.events.write("outputs", outputs=list(outs), **self.cell_fields(cell_index))

    def _update_display_id(self, display_id, msg):
        # A display updated in place (progress bars): each cell showing it gets its outputs anew.
        super()._update_display_id(display_id, msg)
        for cell_index in self._display_id_map.get(display_id, {}):
            self.events.write("outputs", outputs=list(self.nb.cells[cell_index].outputs), **self.cell_fields(cell_index))

    def report_metrics(self, position):
        lines = self.metrics.new_lines()
        if lines:
            self.events.write("metrics", lines=lines, **self.cell_fields(position))


def echo(output):
    """Writes a cell's stdout, stderr and traceback to the driver's own streams (the run's log)."""
    kind = output.get("output_type")
    if kind == "stream":
        stream = sys.stderr if output.get("name") == "stderr" else sys.stdout
        stream.write(output.get("text", ""))
        stream.flush()
    elif kind == "error":
        sys.stderr.write("\n".join(output.get("traceback", [])) + "\n")
        sys.stderr.flush()


def save(nb, path):
    """Writes the notebook beside its final name and renames it, so a reader never sees half of it."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    partial = path + ".partial"
    nbformat.write(nb, partial)
    os.replace(partial, path)


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(description="Run a notebook cell by cell for Drover.")
    parser.add_argument("notebook")
    parser.add_argument("--events", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    try:
        nb = nbformat.read(args.notebook, as_version=4)
    except FileNotFoundError:
        fail("no notebook at %s (in %s)" % (args.notebook, os.getcwd()))
    except Exception as error:
        fail("%s is not a notebook nbformat can read: %s" % (args.notebook, error))

    try:
        params = json.loads(os.environ.get("DROVER_NOTEBOOK_PARAMS") or "{}")
    except ValueError as error:
        fail("DROVER_NOTEBOOK_PARAMS is not JSON: %s" % error)

    code_cells = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.source.strip()]
    selected = parse_selection(os.environ.get("DROVER_NOTEBOOK_CELLS"), code_cells)

    # Where each cell of the notebook being run came from (the injected one sits after `parameters`).
    source_index = list(range(len(nb.cells)))
    to_run = list(selected)
    injected_at = None
    if params:
        language = nb.metadata.get("kernelspec", {}).get("language", "python")
        tagged = [index for index, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
        anchor = tagged[0] if tagged else -1
        injected_at = anchor + 1
        nb.cells.insert(injected_at, parameters_cell(params, language))
        source_index.insert(injected_at, max(anchor, 0))
        # The parameters cell, the injected one right after it, then the rest.
        to_run = sorted(set(to_run) | ({anchor} if anchor >= 0 else set()))
    positions = [index + (1 if injected_at is not None and index >= injected_at else 0) for index in to_run]
    if injected_at is not None:
        positions = sorted(positions + [injected_at])

    kernel = nb.metadata.get("kernelspec", {}).get("name") or "python3"
    events = EventLog(args.events)
    metrics = MetricsTail(os.environ.get("DROVER_METRICS"))
    events.write("begin", cells=selected, kernel=kernel, params=params, host=socket.gethostname())

    # The kernel runs beside the notebook, as Jupyter runs it; the debugger's warning is noise.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    folder = os.path.dirname(os.path.abspath(args.notebook))
    def cell_fields(position):
        # Events name the cell of the notebook as the user has it; the injected one is marked.
        if position == injected_at:
            return {"cell": source_index[position], "injected": True}
        return {"cell": source_index[position]}

    client = CellDriver(nb, events, metrics, cell_fields, kernel_name=kernel, timeout=None, resources={"metadata": {"path": folder}})
    status = "ok"
    try:
        with client.setup_kernel():
            for position in positions:
                cell = nb.cells[position]
                events.write("start", **cell_fields(position))
                outcome = "ok"
                try:
                    client.execute_cell(cell, position)
                except CellExecutionError:
                    outcome = "error"
                client.report_metrics(position)
                events.write("finish", status=outcome, executionCount=cell.get("execution_count"), **cell_fields(position))
                save(nb, args.output)
                if outcome == "error":
                    status = "error"
                    break
    except DeadKernelError as error:
        status = "error"
        events.write("end", status=status, message="the kernel died: %s" % error)
        save(nb, args.output)
        fail("the kernel died while running the notebook: %s" % error, 1)
    except Exception as error:  # noqa: BLE001 - a kernel that cannot start says why, and nothing else should be hidden
        name = type(error).__name__
        if name == "NoSuchKernel":
            events.write("end", status="error", message="no kernel %r" % kernel)
            fail("no Jupyter kernel named %r for %s on %s: install one (%s)" % (kernel, sys.executable, socket.gethostname(), INSTALL_HINT))
        raise
    events.write("end", status=status)
    save(nb, args.output)
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
