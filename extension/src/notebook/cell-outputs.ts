import * as vscode from 'vscode';
import { CELL_METRICS_MIME, type CellMetricsOutput, type NotebookOutput } from '../../../common/protocol';

/** nbformat keeps multi-line text as a list of lines in files, and as a string in kernel messages. */
function joined(value: unknown): string {
  return Array.isArray(value) ? value.join('') : typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * Jupyter outputs as VS Code shows them. The metadata is what VS Code's own ipynb serializer
 * reads back, so a saved notebook keeps each output's type (stream, result, display, error).
 * Consecutive writes to one stream are joined into one output, as Jupyter shows them.
 */
export function toCellOutputs(outputs: readonly NotebookOutput[]): vscode.NotebookCellOutput[] {
  const result: vscode.NotebookCellOutput[] = [];
  let stream: { name: string; text: string } | undefined;
  const flush = () => {
    if (!stream) return;
    const item = stream.name === 'stderr' ? vscode.NotebookCellOutputItem.stderr(stream.text) : vscode.NotebookCellOutputItem.stdout(stream.text);
    result.push(new vscode.NotebookCellOutput([item], { outputType: 'stream' }));
    stream = undefined;
  };
  for (const output of outputs) {
    if (output.output_type === 'stream') {
      const name = output.name ?? 'stdout';
      if (stream && stream.name !== name) flush();
      stream = { name, text: (stream?.text ?? '') + joined(output.text ?? '') };
      continue;
    }
    flush();
    if (output.output_type === 'error') {
      const error = { name: output.ename ?? 'Error', message: output.evalue ?? '', stack: (output.traceback ?? []).join('\n') };
      result.push(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.error(error)], { outputType: 'error', originalError: output }));
      continue;
    }
    const items = Object.entries(output.data ?? {}).map(([mime, value]) => dataItem(mime, value));
    const metadata: Record<string, unknown> = { outputType: output.output_type, metadata: output.metadata ?? {} };
    if (output.output_type === 'execute_result') metadata['executionCount'] = output.execution_count ?? null;
    result.push(new vscode.NotebookCellOutput(items, metadata));
  }
  flush();
  return result;
}

function dataItem(mime: string, value: unknown): vscode.NotebookCellOutputItem {
  // Images travel base64-encoded in Jupyter's JSON (SVG, being text, does not).
  if (mime.startsWith('image/') && mime !== 'image/svg+xml') return new vscode.NotebookCellOutputItem(Buffer.from(joined(value), 'base64'), mime);
  if (mime === 'application/json' || mime.endsWith('+json')) return vscode.NotebookCellOutputItem.json(value, mime);
  return vscode.NotebookCellOutputItem.text(joined(value), mime);
}

/** The output the Drover renderer draws as a small live chart of a cell's metrics. */
export function metricsOutput(metrics: CellMetricsOutput): vscode.NotebookCellOutput {
  return new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.json(metrics, CELL_METRICS_MIME)], { outputType: 'display_data', droverMetrics: true });
}
