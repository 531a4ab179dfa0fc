/**
 * Dashboard benchmark: the built webview bundle (dist/webviews) in headless Chromium, fed the
 * messages the extension sends (test/support/dashboard-page.ts), with the points asked of a real
 * daemon (dist/daemon.js) over its socket, as the extension asks them (`drover/metricSummaries`
 * for every run, `drover/runMetrics` for the runs the charts overlay), from a state file holding
 * every point.
 *
 * 1. 1 run × 1,000,000 points (one metric): the daemon's answer at 2,000 points, the page draws
 *    it; against sending all 1,000,000 points to the page; and a 1% zoom asked again.
 * 2. 200 runs × 10,000 points (two metrics each): the daemon's answers for the snapshot (the
 *    summaries of 200 runs, the series of the overlaid runs at their share of the charts' point
 *    budget); the page draws the table of 200 runs with the newest 10 overlaid (its default), and
 *    with all 200 selected.
 * 3. Streaming: 20 charts (metrics) of one run, 100 new points per second into each, batched every
 *    100 ms as the extension does: frame intervals while it streams.
 *
 * Daemon answer: from sending the request(s) to the parsed answer at the client (the daemon's
 * read, its thinning, the JSON both ways), median of 5 after a warm-up. Time to first render:
 * from posting the snapshot to the page's render report plus the task after it (uPlot draws
 * synchronously; the browser paints next). Memory: the page's JS heap after
 * a forced garbage collection, less the heap before the snapshot. Run: npm run bench, or
 * `npx tsc -b && npx webpack --mode production && node out/bench/dashboard-bench.js`.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import type { DaemonClient } from '../common/node/daemon-client';
import { overlaidRuns, overlayPointBudget, type DashboardSnapshot, type JobView, type MetricsParams, type SeriesColumns } from '../common/protocol';
import type { RunPlan } from '../common/spec';
import { readDashboardMetrics, readSeries } from '../extension/src/dashboard/dashboard-data';
import { Store, type MetricRow } from '../runner/src/store/store';
import { DaemonHarness } from '../test/support/daemon-harness';
import { curve, experimentSnapshot, summarize, sweepRun } from '../test/support/dashboard-fixtures';
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
    const loads = (await page.posted()).filter((message) => message.type === 'load');
    check(loads.length === 0, `the snapshot held the series the charts draw (the page asked for more: ${JSON.stringify(loads)})`);
    const after = await heapBytes(page);
    return { ms: result.ms, heapMiB: (after - before) / 2 ** 20, points: result.report.points, charts: result.report.charts.length };
  } finally {
    await page.close();
  }
}

/** The run of a million points; runs 1 to 200 are the sweep. */
const MILLION_RUN = 201;
const T0 = 1_700_000_000_000;

function millionPoint(step: number): MetricRow {
  return { jobId: MILLION_RUN, attempt: 1, name: 'loss', step, value: 2 * Math.exp(-step / 250_000) + 0.1 * Math.sin(step / 7) + (step === 610_000 ? 3 : 0), at: T0 + step * 50 };
}

/** Fills a Drover home's state file as a daemon would have left it: finished runs with their points. */
function seedHome(home: string, sweep: readonly JobView[]): void {
  const store = Store.open(path.join(home, 'drover.db'));
  try {
    const plan: RunPlan = { key: 'train', job: 'train', params: {}, command: 'true', workdir: home, env: {}, resources: { gpus: { count: 0 } }, retries: 0, priority: 0, needs: [] };
    store.transaction(() => {
      const submission = store.insertSubmission('lr-sweep', 'bench', { specText: '', overrides: {}, workdir: home, env: {} }, T0);
      for (let id = 1; id <= MILLION_RUN; id++) check(store.insertJob({ submissionId: submission, plan: { ...plan, key: `train[${id}]` }, state: 'succeeded', needs: [] }, T0) === id, 'job ids from 1');
    });
    const rows = (series: SeriesColumns): MetricRow[] => series.value.map((value, index) => ({ jobId: series.jobId, attempt: 1, name: series.name, step: series.step[index]!, value, at: series.at[index]! }));
    for (const run of sweep) store.transaction(() => store.addMetrics([...rows(curve(run, 'loss', 10_000)), ...rows(curve(run, 'acc', 10_000))]), { deferred: true });
    for (let from = 0; from < 1_000_000; from += 10_000) store.transaction(() => store.addMetrics(Array.from({ length: 10_000 }, (_, index) => millionPoint(from + index))), { deferred: true });
  } finally {
    store.close();
  }
}

/** The median ms of `reps` calls of `ask` after a warm-up, with the last answer. */
async function answered<T>(ask: () => Promise<T>, reps = 5): Promise<{ ms: number; answer: T }> {
  let answer = await ask();
  const samples: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const started = performance.now();
    answer = await ask();
    samples.push(performance.now() - started);
  }
  return { ms: samples.sort((a, b) => a - b)[Math.floor(reps / 2)]!, answer };
}

/** One run's `drover/metrics` answer as the charts take it. */
async function runSeries(client: DaemonClient, params: MetricsParams): Promise<SeriesColumns[]> {
  const answer = await client.request('drover/metrics', params);
  return answer.map((series) => ({ jobId: params.id, name: series.name, step: series.points.map((point) => point.step), at: series.points.map((point) => point.at), value: series.points.map((point) => point.value), total: series.total }));
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
    const sweep = experimentSnapshot(200, 10_000, MAX_POINTS);
    progress('the state file: 200 runs × 10,000 points × 2 metrics, 1 run × 1,000,000 points');
    const harness = new DaemonHarness();
    try {
      seedHome(harness.home, sweep.jobs);
      const client = await harness.client();
      try {
        // 1. One run, a million points: the whole run, a 1% zoom, and every point.
        progress('1 run × 1,000,000 points: the daemon');
        const whole = await answered(() => readDashboardMetrics(client, [MILLION_RUN], [MILLION_RUN]));
        const thinned = whole.answer.series[0]!;
        check(thinned.value.length <= MAX_POINTS && thinned.total === 1_000_000, `the daemon sent ${thinned.value.length} of ${thinned.total}`);
        check(thinned.value.some((value) => value > 2.5), 'the spike survives the thinning');
        const zoom = await answered(() => readSeries(client, [MILLION_RUN], { axis: 'step', range: { min: 500_000, max: 509_999 }, maxPoints: MAX_POINTS }));
        const zoomed = zoom.answer[0]!;
        check(zoomed.total === 10_000 && zoomed.value.length <= MAX_POINTS && zoomed.step.every((step) => step !== null && step >= 500_000 && step <= 509_999), `the zoom sent ${zoomed.value.length} of ${zoomed.total}, in range`);
        const all = await answered(() => runSeries(client, { id: MILLION_RUN }), 1);
        check(all.answer[0]!.value.length === 1_000_000, 'every point sent');
        const job = sweepRun(MILLION_RUN);
        const summaries = whole.answer.summaries;
        check(summaries.length === 1 && summaries[0]!.count === 1_000_000 && summaries[0]!.max > 2.5, `the summary counts every point and holds the spike: ${JSON.stringify(summaries)}`);
        const snapshotOf = (series: SeriesColumns[]): DashboardSnapshot => ({ target: { kind: 'run', jobId: MILLION_RUN }, title: 'one run', jobs: [job], details: [], series, charted: [MILLION_RUN], summaries, maxPoints: MAX_POINTS });
        progress('1 run × 1,000,000 points: the page');
        const drover = await render(browser, snapshotOf(whole.answer.series));
        const raw = await render(browser, snapshotOf(all.answer));
        console.log('## 1 run × 1,000,000 points (one metric)\n');
        console.log(
          table(
            ['contender', 'daemon answer ms', 'points sent', 'first render ms', 'answer + render ms', 'page heap MiB'],
            [
              ['Drover (the daemon thins to 2,000)', ms(whole.ms), String(drover.points), ms(drover.ms), ms(whole.ms + drover.ms), drover.heapMiB.toFixed(1)],
              ['Drover, 1% zoom asked again (steps 500,000–509,999)', ms(zoom.ms), String(zoomed.value.length), '-', '-', '-'],
              ['all points to the page (no downsampling)', ms(all.ms), String(raw.points), ms(raw.ms), ms(all.ms + raw.ms), raw.heapMiB.toFixed(1)],
            ],
          ),
        );
        console.log(`ratio: answer + first render ${((all.ms + raw.ms) / (whole.ms + drover.ms)).toFixed(1)}× faster, heap ${(raw.heapMiB / Math.max(0.1, drover.heapMiB)).toFixed(1)}× smaller with the daemon's downsampling\n`);

        // 2. Two hundred runs of ten thousand points, asked as the extension asks for a snapshot
        // (readDashboardMetrics): every run's summaries, the overlaid runs' series.
        progress('200 runs × 10,000 points: the daemon');
        const ids = sweep.jobs.map((run) => run.id);
        const lastLoss = sweep.summaries.find((summary) => summary.jobId === 1 && summary.name === 'loss')!;
        const views = [
          { view: 'table of 200, newest 10 overlaid (default)', selected: [] as number[] },
          { view: 'table of 200, all 200 selected and overlaid', selected: ids },
        ];
        const rows: string[][] = [];
        for (const { view, selected } of views) {
          const charted = overlaidRuns(ids, selected);
          const budget = overlayPointBudget(charted.length);
          const read = await answered(() => readDashboardMetrics(client, ids, charted));
          const { series, summaries } = read.answer;
          check(series.length === 2 * charted.length && series.every((entry) => entry.total === 10_000 && entry.value.length <= budget), `each overlaid run's two series, thinned to ${budget} points`);
          const runOne = summaries.find((summary) => summary.jobId === 1 && summary.name === 'loss');
          check(summaries.length === 400 && summaries.every((summary) => summary.count === 10_000) && runOne?.last === lastLoss.last && runOne.min === lastLoss.min, 'every run\'s two summaries, of every point');
          const sent = series.reduce((sum, entry) => sum + entry.value.length, 0);
          progress(`200 runs × 10,000 points: the page (${view})`);
          const drawn = await render(browser, { ...sweep, series, charted, summaries }, selected.length ? { target: sweep.target, ui: { selected } } : undefined);
          rows.push([view, ms(read.ms), String(sent), String(drawn.points), ms(drawn.ms), ms(read.ms + drawn.ms), drawn.heapMiB.toFixed(1)]);
        }
        console.log('## 200 runs × 10,000 points (two metrics each)\n');
        console.log(table(['view', 'daemon answers ms (200 runs)', 'points sent', 'points drawn', 'first render ms', 'answers + render ms', 'page heap MiB'], rows));
      } finally {
        client.close();
      }
    } finally {
      await harness.dispose();
    }

    // 3. Streaming into 20 charts.
    progress('streaming 100 points/s into 20 charts');
    const names = Array.from({ length: 20 }, (_, index) => `metric_${String(index).padStart(2, '0')}`);
    const running = sweepRun(1, { state: 'running', endedAt: undefined });
    const base = curve(running, 'loss', 1000);
    const streamed = names.map((name) => ({ ...base, name }));
    const stream: DashboardSnapshot = { target: { kind: 'run', jobId: 1 }, title: 'streaming', jobs: [running], details: [], series: streamed, charted: [1], summaries: summarize(streamed), maxPoints: MAX_POINTS };
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
