import assert from 'node:assert/strict';
import type { EarlyStop } from '../../../common/spec';
import { earlyStopVerdict, type RunSeries } from '../../../runner/src/scheduler/early-stop';

const median: EarlyStop = { metric: 'loss', mode: 'min', rule: 'median', graceSteps: 2, minRuns: 3, reductionFactor: 3 };
const asha: EarlyStop = { metric: 'acc', mode: 'max', rule: 'asha', graceSteps: 1, minRuns: 3, reductionFactor: 3 };

/** A run whose metric took these values at steps 1, 2, 3… */
const run = (id: number, ...values: number[]): RunSeries => ({ id, points: values.map((value, index) => ({ step: index + 1, value })) });

describe('early stopping', () => {
  describe('median stopping rule', () => {
    const field = [run(1, 0.9, 0.5, 0.3), run(2, 0.8, 0.6, 0.4), run(3, 0.9, 0.7, 0.5)];

    it('stops a run whose best so far is worse than the median of the others at the same step', () => {
      const verdict = earlyStopVerdict(median, 4, [...field, run(4, 1.0, 0.9)]);
      // The others' best by step 2: 0.5, 0.6, 0.7 → median 0.6; this one's best is 0.9.
      assert.equal(verdict, 'loss 0.9 by step 2 is worse than the median 0.6 of 3 other runs there (median stopping rule)');
    });

    it('lets a run at or better than the median go on', () => {
      assert.equal(earlyStopVerdict(median, 4, [...field, run(4, 1.0, 0.6)]), undefined);
      assert.equal(earlyStopVerdict(median, 4, [...field, run(4, 1.0, 0.2)]), undefined);
    });

    it('judges by the best value so far, not the last one', () => {
      assert.equal(earlyStopVerdict(median, 4, [...field, run(4, 0.4, 0.95)]), undefined);
    });

    it('judges no run before its grace steps, nor with too few others at that step', () => {
      assert.equal(earlyStopVerdict(median, 4, [...field, run(4, 5)]), undefined, 'step 1 is within grace');
      assert.equal(earlyStopVerdict(median, 4, [field[0]!, field[1]!, run(3, 0.1), run(4, 1.0, 0.9)]), undefined, 'one of the others has not reached step 2');
    });

    it('reads higher as better in max mode', () => {
      const accuracy: EarlyStop = { ...median, mode: 'max', metric: 'acc' };
      const field = [run(1, 0.5, 0.7), run(2, 0.5, 0.8), run(3, 0.5, 0.9)];
      assert.match(earlyStopVerdict(accuracy, 4, [...field, run(4, 0.5, 0.6)]) ?? '', /acc 0\.6 by step 2 is worse than the median 0\.8/);
      assert.equal(earlyStopVerdict(accuracy, 4, [...field, run(4, 0.5, 0.85)]), undefined);
    });
  });

  describe('successive halving (ASHA)', () => {
    // Rungs at steps 1, 3, 9 (grace 1, factor 3).
    it('keeps only the best third of the runs that reached a rung', () => {
      const runs = [run(1, 0.9), run(2, 0.5), run(3, 0.4), run(4, 0.8), run(5, 0.3), run(6, 0.2)];
      // At rung 1: six runs, the best 2 go on (0.9 and 0.8).
      assert.equal(earlyStopVerdict(asha, 1, runs), undefined);
      assert.equal(earlyStopVerdict(asha, 4, runs), undefined);
      assert.equal(earlyStopVerdict(asha, 2, runs), 'acc 0.5 at rung 1 is not in the best 2 of 6 runs there (≥ 0.8 needed; successive halving)');
    });

    it('judges each rung once, when a run first reaches it', () => {
      const runs = [run(1, 0.9), run(2, 0.5), run(3, 0.4)];
      assert.match(earlyStopVerdict(asha, 3, runs) ?? '', /rung 1/);
      // Judged at rung 1 already (it was let on then): later arrivals there do not stop it.
      assert.equal(earlyStopVerdict(asha, 3, runs, 1), undefined);
      // Between rungs: nothing to judge.
      assert.equal(earlyStopVerdict(asha, 1, [run(1, 0.9, 0.9), run(2, 0.5, 0.5), run(3, 0.4, 0.4)], 1), undefined);
    });

    it('lets runs go on while a rung has fewer runs than the factor', () => {
      assert.equal(earlyStopVerdict(asha, 2, [run(1, 0.9), run(2, 0.1)]), undefined);
    });

    it('judges at the highest rung a run has reached', () => {
      const runs = [run(1, 0.1, 0.2, 0.9), run(2, 0.1, 0.2, 0.8), run(3, 0.1, 0.2, 0.3)];
      assert.match(earlyStopVerdict(asha, 3, runs, 2) ?? '', /acc 0\.3 at rung 3 is not in the best 1 of 3/);
    });
  });
});
