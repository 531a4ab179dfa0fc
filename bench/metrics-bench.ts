/**
 * Metrics store benchmark: what the daemon spends on a run's metrics, in Node on a real state
 * file (node-sqlite3-wasm, as the daemon uses it), without the page or the RPC around it.
 *
 * 1. Ingest: 1,000,000 points of one metric written in batches of 1,000 (a run that logs fast),
 *    and 20,000 in batches of 10 (a run streaming a few points per commit): points/s.
 * 2. Reads as `drover/metrics` answers them (`readMetrics`): the full range of the 1,000,000
 *    points at 2,000 points, a 1% zoom by step and by time at 2,000 points, every point with no
 *    budget, and 200 runs × 10,000 points at 250 points each (a 200-run dashboard's snapshot).
 *
 * Times are the median of 5 reads after one warm-up; CPU is the process's user + system time
 * over the same read. Run: `npx tsc -b && node out/bench/metrics-bench.js`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MetricSeries, MetricsParams } from '../common/protocol';
import { readMetrics } from '../runner/src/metrics/lttb';
import { Store, type MetricRow } from '../runner/src/store/store';
import { check, ms, progress, runSync, table } from './report';

const T = 1_700_000_000_000;
const MILLION = 1_000_000;

function point(jobId: number, step: number, length: number): MetricRow {
  // A decaying curve with noise, one spike and one dip (which a thinning must keep).
  const value = 2 * Math.exp(-step / (length / 4)) + 0.1 * Math.sin(step / 7) + (step === Math.floor(length * 0.61) ? 3 : 0) - (step === Math.floor(length * 0.37) ? 5 : 0);
  return { jobId, attempt: 1, name: 'loss', step, value, at: T + step * 50 };
}

/** Writes `length` points of run `jobId` in batches of `batch`, one transaction each; returns points/s by wall and by CPU. */
function ingest(store: Store, jobId: number, length: number, batch: number): { wallPerS: number; cpuPerS: number } {
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let from = 0; from < length; from += batch) {
    const points = Array.from({ length: Math.min(batch, length - from) }, (_, index) => point(jobId, from + index, length));
    // Deferred: the commit's sync is not what is measured here.
    store.transaction(() => store.addMetrics(points), { deferred: true });
  }
  const wall = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { wallPerS: length / (wall / 1000), cpuPerS: length / ((used.user + used.system) / 1e6) };
}

interface Timed {
  wallMs: number;
  cpuMs: number;
  answer: MetricSeries[];
}

function timed(read: () => MetricSeries[]): Timed {
  read();
  const samples: { wallMs: number; cpuMs: number }[] = [];
  let answer: MetricSeries[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    answer = read();
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    samples.push({ wallMs, cpuMs: (used.user + used.system) / 1000 });
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  return { wallMs: median(samples.map((s) => s.wallMs)), cpuMs: median(samples.map((s) => s.cpuMs)), answer };
}

function main(): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-metrics-bench-'));
  const store = Store.open(path.join(dir, 'state.db'));
  try {
    console.log(`# Metrics store benchmark (${os.availableParallelism()} CPUs, load average ${os.loadavg().map((load) => load.toFixed(2)).join(' ')})\n`);
    progress('ingest: 1,000,000 points in batches of 1,000');
    const bulk = ingest(store, 1, MILLION, 1000);
    progress('ingest: 20,000 points in batches of 10');
    const streaming = ingest(store, 2, 20_000, 10);
    console.log('## Ingest (addMetrics, one transaction per batch)\n');
    console.log(
      table(
        ['batch', 'points', 'points/s (wall)', 'points/s (CPU)'],
        [
          ['1,000 points', '1,000,000', bulk.wallPerS.toFixed(0), bulk.cpuPerS.toFixed(0)],
          ['10 points', '20,000', streaming.wallPerS.toFixed(0), streaming.cpuPerS.toFixed(0)],
        ],
      ),
    );

    progress('200 runs × 10,000 points: writing');
    for (let run = 100; run < 300; run++) store.transaction(() => store.addMetrics(Array.from({ length: 10_000 }, (_, step) => point(run, step, 10_000))), { deferred: true });

    const read = (options: Omit<MetricsParams, 'id'>) => () => readMetrics(store, 1, options);
    const stepZoom = { axis: 'step' as const, min: 500_000, max: 509_999 };
    const timeZoom = { axis: 'time' as const, min: T + 500_000 * 50, max: T + 509_999 * 50 };
    const cases: [string, () => MetricSeries[], number, number | undefined][] = [
      ['1,000,000 points, full range, 2,000 points', read({ maxPoints: 2000 }), MILLION, 2000],
      ['1,000,000 points, 1% zoom by step, 2,000 points', read({ range: stepZoom, maxPoints: 2000 }), 10_000, 2000],
      ['1,000,000 points, 1% zoom by time, 2,000 points', read({ range: timeZoom, maxPoints: 2000 }), 10_000, 2000],
      ['1,000,000 points, every point (no budget)', read({}), MILLION, undefined],
      ['200 runs × 10,000 points, 250 points each', () => Array.from({ length: 200 }, (_, index) => readMetrics(store, 100 + index, { maxPoints: 250 })).flat(), 10_000, 250],
    ];
    const rows: string[][] = [];
    for (const [label, run, total, maxPoints] of cases) {
      progress(label);
      const result = timed(run);
      for (const series of result.answer) {
        check(series.total === total, `${label}: ${series.total} points counted in range, not ${total}`);
        check(maxPoints === undefined ? series.points.length === total : series.points.length <= maxPoints, `${label}: ${series.points.length} points sent`);
        const values = series.points.map((p) => p.value);
        if (total === MILLION) check(values.some((value) => value > 2.5) && values.some((value) => value < -2.5), `${label}: the spike and the dip survive`);
      }
      const sent = result.answer.reduce((sum, series) => sum + series.points.length, 0);
      rows.push([label, ms(result.wallMs), ms(result.cpuMs), String(sent)]);
    }
    console.log('\n## Reads (readMetrics, as drover/metrics answers; median of 5)\n');
    console.log(table(['read', 'wall ms', 'CPU ms', 'points sent'], rows));
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

runSync(main);
