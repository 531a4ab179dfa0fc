import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { CELL_METRICS_MIME, type CellMetricsOutput, type JobView } from '../../../common/protocol';
import type { DroverApi } from '../../../extension/src/extension';
import { FAILING_CELLS, kernelsUnavailable, writeNotebook, type TestCell } from '../../support/notebooks';
import { droverExtension, eventually, workspaceFile } from './helpers';

/** A notebook whose middle cell takes a while and reports metrics; the last shows HTML. */
const CELLS: TestCell[] = [
  { source: '# On the cluster', markdown: true },
  { source: 'import time\nprint("hello from the cluster")' },
  { source: 'time.sleep(3)\nprint("::metric step=1 loss=0.5")\nprint("::metric step=2 loss=0.25")' },
  { source: 'from IPython.display import HTML\nHTML("<i>rich</i>")' },
];

const decoder = new TextDecoder();

/** Each output of a cell as `mime: text` (the metrics chart as its series). */
function outputsOf(notebook: vscode.NotebookDocument, index: number): string[] {
  return notebook.cellAt(index).outputs.flatMap((output) =>
    output.items.map((item) => {
      if (item.mime === CELL_METRICS_MIME) {
        const metrics = JSON.parse(decoder.decode(item.data)) as CellMetricsOutput;
        return `${item.mime}: ${Object.entries(metrics.series).map(([name, points]) => `${name}=${points.map((point) => point.value).join(',')}`).join(' ')}`;
      }
      return `${item.mime}: ${decoder.decode(item.data)}`;
    }),
  );
}

describe('Notebooks on the cluster in a real VS Code', function () {
  this.timeout(120_000);
  let api: DroverApi;

  before(async function () {
    const reason = kernelsUnavailable();
    if (reason) {
      console.log(`      skipped: no real Jupyter kernel here: ${reason}`);
      this.skip();
    }
    api = (await droverExtension().activate()) as DroverApi;
    await vscode.commands.executeCommand('drover.startDaemon');
  });

  async function open(name: string, cells: TestCell[]): Promise<vscode.NotebookDocument> {
    writeNotebook(workspaceFile().fsPath, name, cells);
    const notebook = await vscode.workspace.openNotebookDocument(workspaceFile(name));
    await vscode.window.showNotebookDocument(notebook);
    return notebook;
  }

  it('runs a notebook on the local host: each cell shows its state in its status bar, and outputs land in the right cells', async () => {
    const notebook = await open('cluster.ipynb', CELLS);
    const seen = new Map<number, Set<string>>();
    const watch = setInterval(() => {
      for (const [index, text] of api.test.notebooks.statusTexts(notebook)) {
        if (!seen.has(index)) seen.set(index, new Set());
        seen.get(index)!.add(text.replace(/\d+s/, 'Ns'));
      }
    }, 50);
    let job: JobView | undefined;
    try {
      job = (await vscode.commands.executeCommand('drover.runNotebookOnCluster', notebook.uri, { host: 'local', gpus: 0 })) as JobView | undefined;
      assert.ok(job, 'the notebook was submitted');
      await eventually('every cell to be done', () => {
        const texts = api.test.notebooks.statusTexts(notebook);
        return [1, 2, 3].every((index) => texts.get(index)?.startsWith('$(check) done in')) && texts;
      }, 90_000);
    } finally {
      clearInterval(watch);
    }
    // Under the cells as the run went: the slow cell ran on the host while the next one waited.
    assert.ok(seen.get(2)?.has('$(sync~spin) running on local · Ns'), `cell 2 showed it was running: ${[...(seen.get(2) ?? [])].join(' | ')}`);
    assert.ok([...(seen.get(3) ?? [])].some((text) => text.startsWith('$(clock) queued')), `cell 3 showed it was queued: ${[...(seen.get(3) ?? [])].join(' | ')}`);
    assert.equal(seen.has(0), false, 'a markdown cell has no run status');
    assert.match(api.test.notebooks.statusTexts(notebook).get(1)!, /^\$\(check\) done in \d+s on local$/);

    // The outputs, each in its own cell, the metrics as the chart's data.
    await eventually('the outputs in the notebook', () => outputsOf(notebook, 3).length > 0 && outputsOf(notebook, 2).some((output) => output.startsWith(CELL_METRICS_MIME)));
    assert.deepEqual(outputsOf(notebook, 1), ['application/vnd.code.notebook.stdout: hello from the cluster\n']);
    assert.deepEqual(outputsOf(notebook, 2), ['application/vnd.code.notebook.stdout: ::metric step=1 loss=0.5\n::metric step=2 loss=0.25\n', `${CELL_METRICS_MIME}: loss=0.5,0.25`]);
    assert.ok(outputsOf(notebook, 3).includes('text/html: <i>rich</i>'), outputsOf(notebook, 3).join('\n'));
    assert.deepEqual(outputsOf(notebook, 0), []);

    // The executed notebook is the run's artifact, and opens as a notebook.
    await vscode.commands.executeCommand('drover.openExecutedNotebook', job!.id);
    const executed = await eventually('the executed notebook to open', () => vscode.window.activeNotebookEditor?.notebook.uri.path.endsWith('/executed.ipynb') && vscode.window.activeNotebookEditor.notebook);
    assert.deepEqual(outputsOf(executed, 1), ['application/vnd.code.notebook.stdout: hello from the cluster\n']);
  });

  it('stops at a failing cell: its traceback is in that cell, and the cells after it did not run', async () => {
    const notebook = await open('fails.ipynb', FAILING_CELLS);
    const job = (await vscode.commands.executeCommand('drover.runNotebookOnCluster', notebook.uri, { host: 'local', gpus: 0 })) as JobView;
    const texts = await eventually('the run to end', () => {
      const now = api.test.notebooks.statusTexts(notebook);
      return now.get(2) === '$(circle-slash) not run' && now;
    }, 90_000);
    assert.match(texts.get(0)!, /^\$\(check\) done in/);
    assert.match(texts.get(1)!, /^\$\(error\) failed after \d+s on local$/);
    await eventually('the error in cell 1', () => outputsOf(notebook, 1).some((output) => output.startsWith('application/vnd.code.notebook.error')));
    const error = outputsOf(notebook, 1).find((output) => output.startsWith('application/vnd.code.notebook.error'))!;
    const parsed = JSON.parse(error.slice(error.indexOf(': ') + 2)) as { name: string; message: string; stack: string };
    assert.equal(parsed.name, 'ZeroDivisionError');
    // eslint-disable-next-line no-control-regex -- the colours IPython puts in tracebacks
    assert.match(parsed.stack.replace(/\x1b\[[0-9;]*m/g, ''), /----> 3 divide\(x, 0\)/);
    assert.deepEqual(outputsOf(notebook, 2), []);

    // Outputs cleared, then applied again from the run's executed notebook.
    const cleared = new vscode.WorkspaceEdit();
    cleared.set(notebook.uri, [0, 1].map((index) => vscode.NotebookEdit.replaceCells(new vscode.NotebookRange(index, index + 1), [new vscode.NotebookCellData(vscode.NotebookCellKind.Code, notebook.cellAt(index).document.getText(), 'python')])));
    assert.ok(await vscode.workspace.applyEdit(cleared));
    assert.deepEqual(outputsOf(notebook, 0), []);
    assert.equal(await vscode.commands.executeCommand('drover.applyRunOutputs', notebook.uri, job.id), true);
    assert.deepEqual(outputsOf(notebook, 0), ['application/vnd.code.notebook.stdout: first\n']);
    assert.ok(outputsOf(notebook, 1).some((output) => output.startsWith('application/vnd.code.notebook.error') && output.includes('ZeroDivisionError')));
  });
});
