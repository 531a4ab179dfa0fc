import assert from 'node:assert/strict';
import type { CellEvent, JobView } from '../../../common/protocol';
import { cellSelection, cellStatusText, NotebookRunProgress, seriesOf } from '../../../extension/src/notebook/cell-progress';

const job = (fields: Partial<JobView>): JobView => ({
  id: 7, submissionId: 1, specName: 'nb', key: 'nb', state: 'running', priority: 0, resources: { gpus: { count: 1 } }, params: {}, attempts: 1, createdAt: 0, ...fields,
});

describe('notebook run progress (the cell status bar and outputs)', () => {
  it('follows the cells through their events, leaving out the injected parameters cell', () => {
    const progress = new NotebookRunProgress(7, [1, 2, 3]);
    const events: CellEvent[] = [
      { event: 'begin', time: 0, cells: [1, 2, 3], kernel: 'python3', host: 'box-2', params: { lr: 0.1 } },
      { event: 'start', time: 1000, cell: 1 },
      { event: 'finish', time: 1100, cell: 1, status: 'ok', executionCount: 1 },
      { event: 'start', time: 1100, cell: 1, injected: true },
      { event: 'output', time: 1150, cell: 1, injected: true, output: { output_type: 'stream', name: 'stdout', text: 'not the user’s' } },
      { event: 'finish', time: 1200, cell: 1, injected: true, status: 'ok', executionCount: 2 },
      { event: 'start', time: 2000, cell: 2 },
      { event: 'output', time: 2500, cell: 2, output: { output_type: 'stream', name: 'stdout', text: '::metric step=1 loss=0.5\n' }, points: [{ name: 'loss', step: 1, value: 0.5 }] },
      { event: 'metrics', time: 2600, cell: 2, points: [{ name: 'loss', step: 2, value: 0.25 }, { name: 'acc', step: 2, value: 0.9 }] },
    ];
    assert.deepEqual([...progress.apply(events)].sort(), [1, 2]);
    assert.equal(progress.cells.get(1)!.state, 'done');
    assert.deepEqual(progress.cells.get(1)!.outputs, [], "the injected cell's output is not cell 1's");
    assert.equal(progress.cells.get(2)!.state, 'running');
    assert.equal(progress.cells.get(3)!.state, 'queued');
    assert.deepEqual(seriesOf(progress.cells.get(2)!.points), { loss: [{ step: 1, value: 0.5 }, { step: 2, value: 0.25 }], acc: [{ step: 2, value: 0.9 }] });

    const running = job({ host: 'box-2', gpus: [1] });
    assert.equal(cellStatusText(progress.cells.get(2)!, running, 14_500).text, '$(sync~spin) running on box-2 GPU 1 · 12s');
    assert.equal(cellStatusText(progress.cells.get(3)!, running, 14_500).text, '$(clock) queued on box-2 GPU 1');
    assert.equal(cellStatusText(progress.cells.get(1)!, running, 14_500).text, '$(check) done in 0s on box-2 GPU 1');
    assert.equal(cellStatusText(progress.cells.get(3)!, job({ state: 'queued', reason: 'waiting for a GPU' }), 0).tooltip, 'Drover run 7: queued (waiting for a GPU)');

    progress.apply([{ event: 'output', time: 3000, cell: 2, output: { output_type: 'error', ename: 'ValueError', evalue: 'bad', traceback: ['tb'] } }, { event: 'finish', time: 5000, cell: 2, status: 'error', executionCount: 3 }, { event: 'end', time: 5100, status: 'error' }]);
    const failed = job({ state: 'failed', host: 'box-2', gpus: [1], reason: 'exited with code 1', endedAt: 5200 });
    progress.settle(failed);
    assert.equal(cellStatusText(progress.cells.get(2)!, failed, 9999).text, '$(error) failed after 3s on box-2 GPU 1');
    assert.equal(cellStatusText(progress.cells.get(3)!, failed, 9999).text, '$(circle-slash) not run');
    assert.ok(progress.ended);
  });

  it("replaces a cell's outputs when it clears them or updates a display", () => {
    const progress = new NotebookRunProgress(7, [0]);
    progress.apply([
      { event: 'start', time: 0, cell: 0 },
      { event: 'output', time: 1, cell: 0, output: { output_type: 'stream', name: 'stderr', text: '10%' } },
      { event: 'outputs', time: 2, cell: 0, outputs: [{ output_type: 'stream', name: 'stderr', text: '100%' }] },
    ]);
    assert.deepEqual(progress.cells.get(0)!.outputs, [{ output_type: 'stream', name: 'stderr', text: '100%' }]);
  });

  it('starts over for a retry', () => {
    const progress = new NotebookRunProgress(7, [0]);
    progress.apply([{ event: 'start', time: 1, cell: 0 }]);
    progress.offset = 120;
    progress.restart(2);
    assert.equal(progress.cells.get(0)!.state, 'queued');
    assert.equal(progress.offset, 0);
    assert.equal(progress.attempt, 2);
  });

  it('names the cells to run for the driver', () => {
    assert.equal(cellSelection({ kind: 'all' }), undefined);
    assert.equal(cellSelection({ kind: 'from', cell: 3 }), '3-');
    assert.equal(cellSelection({ kind: 'cells', cells: [5, 2, 5] }), '2,5');
  });
});
