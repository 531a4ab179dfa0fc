import { formatMetricValue, type EarlyStop } from '../../../common/spec';

/**
 * Early stopping of sweep runs that cannot win, as a pure function of the metric series the
 * runs of one sweep reported so far: the daemon asks after each new point of the judged metric.
 */

export interface StepValue {
  step: number;
  value: number;
}

/** One run of the sweep: its points of the judged metric, in step order. */
export interface RunSeries {
  id: number;
  points: readonly StepValue[];
}

/**
 * Why run `id` should stop now, or undefined to let it go on. `judgedUpTo` is the last step
 * it was judged at: a rung of ASHA is judged once, when the run first reaches it (a run that
 * went on past a rung is never stopped there later, as in asynchronous successive halving).
 */
export function earlyStopVerdict(rule: EarlyStop, id: number, runs: readonly RunSeries[], judgedUpTo = -1): string | undefined {
  const run = runs.find((candidate) => candidate.id === id);
  const step = run?.points.at(-1)?.step;
  if (!run || step === undefined || step < rule.graceSteps) return undefined;
  return rule.rule === 'median' ? medianVerdict(rule, run, runs, step) : ashaVerdict(rule, run, runs, step, judgedUpTo);
}

/** The median stopping rule: worse than the median of the other runs' best values at the same step. */
function medianVerdict(rule: EarlyStop, run: RunSeries, runs: readonly RunSeries[], step: number): string | undefined {
  const others = runs.filter((other) => other.id !== run.id && reached(other, step)).map((other) => bestUpTo(rule, other, step)!);
  if (others.length < rule.minRuns) return undefined;
  const mine = bestUpTo(rule, run, step)!;
  const median = medianOf(others);
  if (!worse(rule, mine, median)) return undefined;
  return `${rule.metric} ${formatMetricValue(mine)} by step ${step} is worse than the median ${formatMetricValue(median)} of ${others.length} other runs there (median stopping rule)`;
}

/** Asynchronous successive halving: at each rung it reaches, a run goes on only in the best 1/factor of the runs there. */
function ashaVerdict(rule: EarlyStop, run: RunSeries, runs: readonly RunSeries[], step: number, judgedUpTo: number): string | undefined {
  const rung = highestRung(rule, step);
  if (rung === undefined || rung <= judgedUpTo) return undefined;
  const values = runs.filter((other) => reached(other, rung)).map((other) => bestUpTo(rule, other, rung)!);
  const kept = Math.max(1, Math.floor(values.length / rule.reductionFactor));
  // Too few runs at this rung yet to keep fewer than all of them.
  if (values.length < rule.reductionFactor) return undefined;
  const sorted = [...values].sort((a, b) => (rule.mode === 'min' ? a - b : b - a));
  const cutoff = sorted[kept - 1]!;
  const mine = bestUpTo(rule, run, rung)!;
  if (!worse(rule, mine, cutoff)) return undefined;
  const needed = `${rule.mode === 'min' ? '≤' : '≥'} ${formatMetricValue(cutoff)} needed`;
  return `${rule.metric} ${formatMetricValue(mine)} at rung ${rung} is not in the best ${kept} of ${values.length} runs there (${needed}; successive halving)`;
}

/** The highest rung (grace × factor^k) at or below `step`. */
function highestRung(rule: EarlyStop, step: number): number | undefined {
  let rung = Math.max(1, rule.graceSteps);
  if (step < rung) return undefined;
  while (rung * rule.reductionFactor <= step) rung *= rule.reductionFactor;
  return rung;
}

function reached(run: RunSeries, step: number): boolean {
  return (run.points.at(-1)?.step ?? -1) >= step;
}

function bestUpTo(rule: EarlyStop, run: RunSeries, step: number): number | undefined {
  let best: number | undefined;
  for (const point of run.points) {
    if (point.step > step) break;
    if (best === undefined || worse(rule, best, point.value)) best = point.value;
  }
  return best;
}

function worse(rule: EarlyStop, value: number, than: number): boolean {
  return rule.mode === 'min' ? value > than : value < than;
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
