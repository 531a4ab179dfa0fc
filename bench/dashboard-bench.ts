/**
 * Dashboard benchmark: the built webview bundle (dist/webviews) in headless Chromium, fed the
 * messages the extension sends (test/support/dashboard-page.ts), with the daemon's share timed
 * in Node on a real state file (node-sqlite3-wasm, as the daemon uses it).
 *
 * 1. 1 run × 1,000,000 points (one metric): the daemon reads the series and thins it to 2,000
 *    points with LTTB, the page draws it; against sending all 1,000,000 points to the page.
 * 2. 200 runs × 10,000 points (two metrics each): the daemon thins each series; the page draws the
 *    table of 200 runs with the newest 10 overlaid (its default), and with all 200 selected.
 * 3. Streaming: 20 charts (metrics) of one run, 100 new points per second into each, batched every
 *    100 ms as the extension does: frame intervals while it streams.
 *
 * Time to first render: from posting the snapshot to the page's render report plus the task
 * after it (uPlot draws synchronously; the browser paints next). Memory: the page's JS heap after
 * a forced garbage collection, less the heap before the snapshot. Run: npm run bench, or
 * `npx tsc -b && npx webpack --mode production && node out/bench/dashboard-bench.js`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import { snapshotPointBudget, toColumns, type DashboardSnapshot, type MetricPointView, type SeriesColumns } from '../common/protocol';
import { downsampleSeries, readMetrics } from '../runner/src/metrics/lttb';
import { Store } from '../runner/src/store/store';
import { curve, experimentSnapshot, sweepRun } from '../test/support/dashboard-fixtures';
import { dashboardPageUnavailable, DashboardPage, launchChromium } from '../test/support/dashboard-page';
import { check, latency, ms, progress, table } from './report';

const MAX_POINTS = 2000;

/** In the page: posts `message`, resolves with the ms until the page reported its render and the task after it ran. */
const TIME_TO_RENDER = `(message) => new Promise((resolve) => {
  const start = performance.now();
  window.droverOnPost = (posted) => {
    if (posted.type !== 'rendered') return;
    window.droverOnPost = undefined;
    setTimeout(() => resolve({ ms: performance.now() - start, report: posted }), 0);
  };
  window.postMessage(message, '*');
})`;

async function heapBytes(page: DashboardPage): Promise<number> {
  const session = await page.page.context().newCDPSession(page.page);
  await session.send('HeapProfiler.collectGarbage');
  await session.send('Performance.enable');
  const { metrics } = await session.send('Performance.getMetrics');
  await session.detach();
  return metrics.find((metric) => metric.name === 'JSHeapUsedSize')!.value;
}

interface RenderResult {
  ms: number;
  heapMiB: number;
  points: number;
  charts: number;
}

async function render(browser: Browser, snapshot: DashboardSnapshot, state?: unknown): Promise<RenderResult> {
  const page = await DashboardPage.open(browser, { theme: 'dark', state });
  try {
    await page.page.waitForFunction('window.droverPosted.some((m) => m.type === "ready")');
    const before = await heapBytes(page);
    const result = (await page.page.evaluate(`(${TIME_TO_RENDER})(${JSON.stringify({ type: 'snapshot', ...snapshot })})`)) as { ms: number; report: { points: number; charts: string[]; runs: number } };
    check(result.report.runs === snapshot.jobs.length, `the page shows ${result.report.runs} of ${snapshot.jobs.length} runs`);
    const after = await heapBytes(page);
    return { ms: result.ms, heapMiB: (after - before) / 2 ** 20, points: result.report.points, charts: result.report.charts.length };
  } finally {
    await page.close();
  }
}

/** The daemon's share: read `points` rows of one metric from a real state file and thin them. */
function daemonSide(points: number, runs: number, maxPoints: number): { readMs: number; lttbMs: number; series: { name: string; points: MetricPointView[]; total: number }[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-dashboard-bench-'));
  const store = Store.open(path.join(dir, 'state.db'));
  try {
    for (let run = 1; run <= runs; run++) {
      store.transaction(() =>
        store.addMetrics(Array.from({ length: points }, (_, step) => ({ jobId: run, attempt: 1, name: 'loss', step, value: 2 * Math.exp(-step / (points / 4)) + 0.1 * Math.sin(step / 7) + (step === Math.floor(points * 0.61) ? 3 : 0), at: 1_700_000_000_000 + step * 50 }))),
      );
    }
    // The daemon's drover/metrics with a point budget (readMetrics), its two steps timed apart.
    let readMs = 0;
    let lttbMs = 0;
    const out = [];
    for (let run = 1; run <= runs; run++) {
      const started = performance.now();
      const [series] = store.metrics(run);
      const read = performance.now();
      out.push(downsampleSeries(series!, undefined, maxPoints));
      lttbMs += performance.now() - read;
      readMs += read - started;
    }
    const [asAnswered] = readMetrics(store, 1, { maxPoints });
    check(JSON.stringify(asAnswered) === JSON.stringify(out[0]), 'the timed steps answer as drover/metrics does');
    return { readMs, lttbMs, series: out };
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const unavailable = dashboardPageUnavailable();
  if (unavailable) {
    console.log(`dashboard benchmark skipped: ${unavailable}`);
    return;
  }
  console.log(`# Dashboard benchmark (headless Chromium, ${os.availableParallelism()} CPUs)\n`);
  const browser = await launchChromium();
  try {
    // 1. One run, a million points.
    progress('1 run × 1,000,000 points: the daemon side');
    const million = daemonSide(1_000_000, 1, snapshotPointBudget(1));
    const thinned = million.series[0]!;
    check(thinned.points.length <= MAX_POINTS && thinned.total === 1_000_000, `LTTB kept ${thinned.points.length} of ${thinned.total}`);
    check(thinned.points.some((point) => point.value > 2.5), 'the spike survives the thinning');
    const job = sweepRun(1);
    const snapshotOf = (series: SeriesColumns[]): DashboardSnapshot => ({ target: { kind: 'run', jobId: 1 }, title: 'one run', jobs: [job], details: [], series, maxPoints: MAX_POINTS });
    progress('1 run × 1,000,000 points: the page');
    const drover = await render(browser, snapshotOf([toColumns(1, 'loss', thinned.points, thinned.total)]));
    const rawColumns: SeriesColumns = { jobId: 1, name: 'loss', step: [], at: [], value: [], total: 1_000_000 };
    for (let step = 0; step < 1_000_000; step++) {
      rawColumns.step.push(step);
      rawColumns.at.push(1_700_000_000_000 + step * 50);
      rawColumns.value.push(2 * Math.exp(-step / 250_000) + 0.1 * Math.sin(step / 7));
    }
    const raw = await render(browser, snapshotOf([rawColumns]));
    console.log('## 1 run × 1,000,000 points (one metric)\n');
    console.log(
      table(
        ['contender', 'daemon read ms', 'LTTB ms', 'points sent', 'first render ms', 'page heap MiB'],
        [
          ['Drover (the daemon thins to 2,000 with LTTB)', ms(million.readMs), ms(million.lttbMs), String(drover.points), ms(drover.ms), drover.heapMiB.toFixed(1)],
          ['all points to the page (no downsampling)', ms(million.readMs), '-', String(raw.points), ms(raw.ms), raw.heapMiB.toFixed(1)],
        ],
      ),
    );
    console.log(`ratio: first render ${(raw.ms / drover.ms).toFixed(1)}× faster, heap ${(raw.heapMiB / Math.max(0.1, drover.heapMiB)).toFixed(1)}× smaller with the daemon's downsampling\n`);

    // 2. Two hundred runs of ten thousand points.
    progress('200 runs × 10,000 points: the daemon side');
    const many = daemonSide(10_000, 200, snapshotPointBudget(200));
    const sweep = experimentSnapshot(200, 10_000, MAX_POINTS);
    // What the extension sends: each series thinned by the daemon to the snapshot's budget for 200 runs (loss as read from the store, acc alike).
    sweep.series = sweep.jobs.flatMap((run, index) => {
      const loss = many.series[index]!;
      const acc = curve(run, 'acc', 10_000);
      const accThinned = downsampleSeries({ name: 'acc', points: acc.value.map((value, step) => ({ step, value, at: acc.at[step]! })), total: 10_000 }, undefined, snapshotPointBudget(200));
      return [toColumns(run.id, 'loss', loss.points, loss.total), toColumns(run.id, 'acc', accThinned.points, accThinned.total)];
    });
    progress('200 runs × 10,000 points: the page');
    const newest = await render(browser, sweep);
    const everything = await render(browser, sweep, { target: sweep.target, ui: { selected: sweep.jobs.map((run) => run.id) } });
    console.log('## 200 runs × 10,000 points (two metrics each)\n');
    console.log(
      table(
        ['view', 'daemon read ms (200 runs)', 'LTTB ms (200 runs)', 'points drawn', 'first render ms', 'page heap MiB'],
        [
          ['table of 200, newest 10 overlaid (default)', ms(many.readMs), ms(many.lttbMs), String(newest.points), ms(newest.ms), newest.heapMiB.toFixed(1)],
          ['table of 200, all 200 selected and overlaid', ms(many.readMs), ms(many.lttbMs), String(everything.points), ms(everything.ms), everything.heapMiB.toFixed(1)],
        ],
      ),
    );

    // 3. Streaming into 20 charts.
    progress('streaming 100 points/s into 20 charts');
    const names = Array.from({ length: 20 }, (_, index) => `metric_${String(index).padStart(2, '0')}`);
    const running = sweepRun(1, { state: 'running', endedAt: undefined });
    const base = curve(running, 'loss', 1000);
    const stream: DashboardSnapshot = { target: { kind: 'run', jobId: 1 }, title: 'streaming', jobs: [running], details: [], series: names.map((name) => ({ ...base, name })), maxPoints: MAX_POINTS };
    const page = await DashboardPage.open(browser, { theme: 'dark' });
    try {
      await page.page.waitForFunction('window.droverPosted.some((m) => m.type === "ready")');
      await page.page.evaluate(`(${TIME_TO_RENDER})(${JSON.stringify({ type: 'snapshot', ...stream })})`);
      const seconds = 5;
      const frames = (await page.page.evaluate(`new Promise((resolve) => {
        const intervals = [];
        let last = performance.now();
        let running = true;
        const tick = (now) => { intervals.push(now - last); last = now; if (running) requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
        const names = ${JSON.stringify(names)};
        let step = 1000;
        const timer = setInterval(() => {
          const series = names.map((name) => {
            const columns = { jobId: 1, name, step: [], at: [], value: [], total: 10 };
            for (let i = 0; i < 10; i++, step++) { columns.step.push(step); columns.at.push(Date.now()); columns.value.push(Math.exp(-step / 4000) + Math.random() * 0.05); }
            step -= 10;
            return columns;
          });
          step += 10;
          window.postMessage({ type: 'points', series }, '*');
        }, 100);
        setTimeout(() => { clearInterval(timer); running = false; resolve(intervals.slice(1)); }, ${seconds * 1000});
      })`)) as number[];
      const report = await page.report('the streamed points drawn', (r) => r.points >= 20 * (1000 + 10 * seconds * 10 * 0.9));
      check(report.charts.length === 20, `${report.charts.length} charts`);
      const frameStats = latency(frames);
      const p95 = [...frames].sort((a, b) => a - b)[Math.ceil(frames.length * 0.95) - 1]!;
      console.log('\n## Streaming: 20 charts, 100 points/s into each (batched every 100 ms)\n');
      console.log(
        table(
          ['frames', 'fps', 'frame p50 ms', 'frame p95 ms', 'frame p99 ms', 'max ms', 'frames > 50 ms', 'points drawn at the end'],
          [[String(frames.length), (frames.length / seconds).toFixed(0), ms(frameStats.p50), ms(p95), ms(frameStats.p99), ms(Math.max(...frames)), String(frames.filter((frame) => frame > 50).length), String(report.points)]],
        ),
      );
    } finally {
      await page.close();
    }
  } finally {
    await browser.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exitCode = 1;
});
