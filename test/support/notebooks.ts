import { spawnSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** A cell of a test notebook: its source, and tags (`parameters`) if any. */
export interface TestCell {
  source: string;
  markdown?: boolean;
  tags?: string[];
}

/** Writes an nbformat 4 notebook for the Python 3 kernel; returns its path. */
export function writeNotebook(dir: string, name: string, cells: TestCell[]): string {
  const notebook = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' }, language_info: { name: 'python' } },
    cells: cells.map((cell, index) => ({
      id: `cell-${index}`,
      cell_type: cell.markdown ? 'markdown' : 'code',
      metadata: cell.tags ? { tags: cell.tags } : {},
      source: cell.source,
      ...(cell.markdown ? {} : { outputs: [], execution_count: null }),
    })),
  };
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(notebook, null, 1));
  return path;
}

/**
 * The notebook the notebook tests run: a markdown cell, a `parameters` cell, a cell that prints,
 * reports metrics both ways (a `::metric` line and the drover_metrics helper, copied beside it)
 * and writes to stderr, and a cell with a rich (HTML) result.
 */
export function writeAnalysisNotebook(dir: string, name = 'analysis.ipynb'): string {
  copyFileSync(resolve(__dirname, '../../../runner/python/drover_metrics.py'), join(dir, 'drover_metrics.py'));
  return writeNotebook(dir, name, ANALYSIS_CELLS);
}

const ANALYSIS_CELLS: TestCell[] = [
  { source: '# Analysis', markdown: true },
  { source: 'lr = 0.1\nname = "default"', tags: ['parameters'] },
  {
    source: [
      'import sys',
      'from drover_metrics import log',
      'print("lr is", lr, "for", name)',
      'print("::metric step=1 loss=0.5")',
      'log(2, loss=0.25)',
      'print("careful", file=sys.stderr)',
    ].join('\n'),
  },
  { source: 'from IPython.display import HTML\nHTML("<b>done</b>")' },
];

/** Cells where the second code cell fails: the third must never run. */
export const FAILING_CELLS: TestCell[] = [
  { source: 'x = 1\nprint("first")' },
  { source: 'def divide(a, b):\n    return a / b\ndivide(x, 0)' },
  { source: 'print("never")' },
];

/** Why this machine cannot run real kernels (Debian's python3 lacks nbclient or ipykernel), if it cannot. */
export function kernelsUnavailable(): string | undefined {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import nbclient, nbformat, ipykernel'], { encoding: 'utf8' });
  if (probe.error) return `no /usr/bin/python3 (${probe.error.message})`;
  return probe.status === 0 ? undefined : `/usr/bin/python3 lacks Jupyter: install python3-nbclient python3-ipykernel (${probe.stderr.trim().split('\n').pop()})`;
}
