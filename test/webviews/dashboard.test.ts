import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { overlayPointBudget, type DashboardState, type FromWebviewMessage } from '../../common/protocol';
import { formatMetricValue } from '../../common/spec';
import { curve, experimentSnapshot, gpuTimelineSnapshot, runsSnapshot, SAMPLE_INTERVAL_MS, sweepRun } from '../support/dashboard-fixtures';
import { waitFor } from '../support/daemon-harness';
import { dashboardPageUnavailable, DashboardPage, launchChromium } from '../support/dashboard-page';

function ofType<K extends FromWebviewMessage['type']>(messages: FromWebviewMessage[], type: K): Extract<FromWebviewMessage, { type: K }>[] {
  return messages.filter((message): message is Extract<FromWebviewMessage, { type: K }> => message.type === type);
}

describe('dashboard webview (the built bundle in headless Chromium)', function () {
  this.timeout(60_000);
  let browser: Browser;
  let page: DashboardPage | undefined;

  before(async function () {
    const reason = dashboardPageUnavailable();
    if (reason) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
    browser = await launchChromium();
  });

  afterEach(async () => {
    await page?.close();
    page = undefined;
  });

  after(async () => {
    await browser?.close();
  });

  it('asks for a snapshot when ready, then renders the runs table, a chart per metric and the sweep scatter', async () => {
    page = await DashboardPage.open(browser, { theme: 'dark' });
    await page.report('nothing yet', () => true, 500).catch(() => undefined);
    assert.deepEqual(ofType(await page.posted(), 'ready').length, 1, 'the page says it is ready once');
    await page.send({ type: 'snapshot', ...experimentSnapshot(9, 300) });
    const report = await page.report('the experiment rendered', (r) => r.runs === 9 && r.charts.length === 2);
    assert.deepEqual(report.charts, ['loss', 'acc']);
    assert.equal(report.rowsShown, 9);
    // No selection: the charts overlay the newest runs (all 9 here), 300 points each, two metrics.
    assert.equal(report.points, 9 * 300 * 2);
    const headers = await page.page.locator('table.runs thead th').allTextContents();
    for (const column of ['Run', 'Status', 'Host / GPU', 'Duration', 'lr', 'seed', 'loss (last)', 'loss (best)', 'acc (last)', 'acc (best)']) {
      assert.ok(headers.some((header) => header.startsWith(column)), `a "${column}" column in ${headers.join(' | ')}`);
    }
    assert.equal(await page.page.locator('.chart canvas').count(), 2, 'one uPlot canvas per metric');
    assert.equal(await page.page.locator('svg.scatter circle.dot').count(), 9, 'one dot per run in the scatter');
    assert.equal(await page.page.locator('.timeline .bar').count(), 9, 'each run on its GPU lane');
    assert.deepEqual(await page.cspViolations(), [], 'nothing the CSP blocks (no inline script or style)');
    await page.screenshot('dashboard-experiment-dark');
  });

  it('filters, sorts and selects runs, and overlays only the selected ones', async () => {
    page = await DashboardPage.open(browser, { theme: 'light' });
    await page.send({ type: 'snapshot', ...experimentSnapshot(9, 200) });
    await page.report('rendered', (r) => r.runs === 9);
    const filter = page.page.locator('vscode-textfield[data-control="filter"] input');
    await filter.fill('lr=0.1');
    await page.report('filtered to lr=0.1', (r) => r.rowsShown === 3);
    const runIds = async () => (await page!.page.locator('table.runs tbody tr').evaluateAll((rows) => rows.map((row) => Number(row.getAttribute('data-run')))));
    assert.deepEqual(await runIds(), [7, 4, 1], 'the lr=0.1 runs, newest first');
    await filter.fill('gpu-box-1');
    await page.report('filtered by host', (r) => r.rowsShown === 5);
    await filter.fill('');
    await page.report('unfiltered', (r) => r.rowsShown === 9);
    // Sort by the best loss: a number column sorts descending first, a second click reverses it.
    const bestLoss = () => page!.page.locator('table.runs tbody td[data-column="best:loss"]').allTextContents();
    const header = page.page.locator('table.runs thead th[data-column="best:loss"]');
    await header.click();
    await waitFor('sorted descending', async () => (await header.getAttribute('aria-sort')) === 'descending');
    const descending = await bestLoss();
    await page.page.locator('table.runs thead th[data-column="best:loss"]').click();
    await waitFor('sorted ascending', async () => (await page!.page.locator('table.runs thead th[data-column="best:loss"]').getAttribute('aria-sort')) === 'ascending');
    const ascending = await bestLoss();
    assert.deepEqual(ascending, [...descending].reverse(), 'a second click reverses the order');
    const values = ascending.map(Number);
    assert.deepEqual(values, [...values].sort((a, b) => a - b), `ascending: ${ascending.join(', ')}`);
    // Select two runs: the charts overlay just those two.
    await page.page.locator('table.runs tbody tr[data-run="2"]').click();
    await page.page.locator('table.runs tbody tr[data-run="5"]').click();
    const report = await page.report('two selected', (r) => r.selected.length === 2);
    assert.deepEqual([...report.selected].sort(), [2, 5]);
    assert.equal(report.points, 2 * 200 * 2, 'two runs overlaid on each of two charts');
    assert.deepEqual(await page.page.locator('.chart[data-metric="loss"] .legend-item').allTextContents(), ['lr-sweep[1] #2', 'lr-sweep[4] #5']);
    const state = (await page.state()) as DashboardState;
    assert.deepEqual([...state.ui!.selected!].sort(), [2, 5], 'the selection is kept in the webview state (for a restored panel)');
    await page.page.locator('vscode-button[data-action="compare"]').click();
    const compare = ofType(await page.posted(), 'action').at(-1);
    assert.deepEqual(compare && { action: compare.action, jobIds: [...compare.jobIds].sort() }, { action: 'compare', jobIds: [2, 5] });
    await page.screenshot('dashboard-experiment-light-selected');
  });

  it('comes back as it was left: a restored panel keeps its selection and choices', async () => {
    const state: DashboardState = { target: { kind: 'experiment', specName: 'lr-sweep' }, ui: { selected: [3], logScale: true, xAxis: 'time', filter: 'seed=0' } };
    page = await DashboardPage.open(browser, { theme: 'dark', state });
    await page.send({ type: 'snapshot', ...experimentSnapshot(9, 100) });
    const report = await page.report('restored', (r) => r.runs === 9);
    assert.deepEqual(report.selected, [3]);
    assert.equal(report.rowsShown, 3, 'the filter seed=0 still applies');
    assert.equal(report.points, 100 * 2);
    assert.equal(await page.page.locator('vscode-checkbox[data-control="log"]').evaluate((box) => (box as unknown as { checked: boolean }).checked), true);
  });

  it('reads in high contrast: borders from the theme, the selection outlined', async () => {
    page = await DashboardPage.open(browser, { theme: 'high-contrast' });
    await page.send({ type: 'snapshot', ...experimentSnapshot(6, 150) });
    await page.report('rendered', (r) => r.runs === 6);
    await page.page.locator('table.runs tbody tr[data-run="3"]').click();
    await page.report('one selected', (r) => r.selected.length === 1);
    const look = await page.page.evaluate(`(() => {
      const row = getComputedStyle(document.querySelector('table.runs tbody tr.selected'));
      const chart = getComputedStyle(document.querySelector('.chart'));
      return { outline: row.outlineStyle + ' ' + row.outlineColor, chartBorder: chart.borderTopColor, background: getComputedStyle(document.body).backgroundColor };
    })()`);
    assert.deepEqual(look, { outline: 'solid rgb(243, 133, 24)', chartBorder: 'rgb(111, 195, 223)', background: 'rgb(0, 0, 0)' });
    await page.screenshot('dashboard-experiment-high-contrast');
  });

  it('updates live: new points extend the charts, new runs and state changes reach the table', async () => {
    page = await DashboardPage.open(browser, { theme: 'dark' });
    const snapshot = experimentSnapshot(3, 50);
    snapshot.jobs[2] = { ...snapshot.jobs[2]!, state: 'running', endedAt: undefined, exitCode: undefined };
    await page.send({ type: 'snapshot', ...snapshot });
    await page.report('rendered', (r) => r.points === 3 * 50 * 2);
    const running = snapshot.jobs[2]!;
    for (let batch = 0; batch < 5; batch++) await page.send({ type: 'points', series: [curve(running, 'loss', 10, 50 + batch * 10), curve(running, 'acc', 10, 50 + batch * 10)] });
    await page.report('the running run grew by 50 points per metric', (r) => r.points === 3 * 50 * 2 + 100);
    const fourth = sweepRun(4, { state: 'running', endedAt: undefined });
    await page.send({ type: 'jobs', jobs: [fourth, { ...running, state: 'succeeded', endedAt: Date.now() }] });
    // The new run is among the newest: the charts overlay it, so the page asks for its series.
    const load = await waitFor('the page to ask for the new run', async () => ofType(await page!.posted(), 'load').at(-1));
    assert.deepEqual(load, { type: 'load', request: load.request, jobIds: [4], maxPoints: overlayPointBudget(4) });
    // Live points come while it is read: the answer holds the first five, the rest are kept and added.
    const early = curve(fourth, 'loss', 5);
    const late = curve(fourth, 'loss', 3, 5);
    await page.send({ type: 'points', series: [early] });
    await page.send({ type: 'points', series: [late] });
    await page.send({ type: 'loaded', request: load.request, jobIds: [4], series: [early] });
    const report = await page.report('a fourth run with its points', (r) => r.runs === 4 && r.points === 3 * 50 * 2 + 100 + 8);
    assert.equal(report.points, 3 * 50 * 2 + 100 + 8, 'the points that came during the load are drawn once');
    assert.equal(await page.page.locator('table.runs tbody tr[data-run="3"] td.state').textContent(), 'succeeded');
    assert.equal(await page.page.locator('table.runs tbody tr[data-run="4"] td.state').textContent(), 'running');
    // The table (redrawn at most once a second while points come) shows the last of them.
    const lastLoss = page.page.locator('table.runs tbody tr[data-run="4"] td[data-column="last:loss"]');
    await waitFor('the last loss of the last burst in the table', async () => (await lastLoss.textContent()) === formatMetricValue(late.value.at(-1)!));
    assert.equal(ofType(await page.posted(), 'load').length, 1, 'asked once');
  });

  it('charts the runs it holds series of, and asks for the others\' when they are selected', async () => {
    page = await DashboardPage.open(browser, { theme: 'dark' });
    // 200 runs: the snapshot charts the newest 10 (its default overlay); the table shows all 200 from their summaries.
    const newest = Array.from({ length: 10 }, (_, index) => 200 - index);
    const snapshot = experimentSnapshot(200, 100, 2000, newest);
    await page.send({ type: 'snapshot', ...snapshot });
    const report = await page.report('rendered', (r) => r.runs === 200);
    await page.screenshot('dashboard-experiment-200-runs');
    assert.equal(report.points, 10 * 100 * 2);
    assert.equal(ofType(await page.posted(), 'load').length, 0, 'nothing to ask for');
    const bestLoss = (run: number) => page!.page.locator(`table.runs tbody tr[data-run="${run}"] td[data-column="best:loss"]`).textContent();
    const summary = snapshot.summaries.find((entry) => entry.jobId === 2 && entry.name === 'loss')!;
    assert.equal(await bestLoss(2), formatMetricValue(summary.min), 'an uncharted run\'s best, from its summary');
    // Selecting two uncharted runs: the page asks for both, at the charts' budget shared between two.
    await page.page.locator('table.runs tbody tr[data-run="2"] input.run-check').click();
    await page.page.locator('table.runs tbody tr[data-run="5"]').click();
    await page.report('two selected', (r) => r.selected.length === 2);
    const loads = ofType(await page.posted(), 'load');
    assert.deepEqual(loads.flatMap((load) => load.jobIds).sort((a, b) => a - b), [2, 5]);
    assert.ok(loads.every((load) => load.maxPoints === overlayPointBudget(1) || load.maxPoints === overlayPointBudget(2)), JSON.stringify(loads));
    const full = experimentSnapshot(200, 100);
    for (const { request, jobIds } of loads) await page.send({ type: 'loaded', request, jobIds, series: full.series.filter((entry) => jobIds.includes(entry.jobId)) });
    await page.report('the two selected drawn', (r) => r.points === 2 * 100 * 2);
    assert.deepEqual(await page.page.locator('.chart[data-metric="loss"] .legend-item').allTextContents(), ['lr-sweep[1] #2', 'lr-sweep[4] #5']);
    await page.screenshot('dashboard-experiment-200-runs-two-selected');
    // A new snapshot (after a reconnection) resets what was asked for: an answer asked before it is not taken, the page asks again.
    await page.send({ type: 'snapshot', ...snapshot });
    await waitFor('the page to ask again', async () => ofType(await page!.posted(), 'load').length === loads.length + 1);
    const again = ofType(await page.posted(), 'load').at(-1)!;
    assert.deepEqual(again.jobIds, [2, 5]);
    for (const { request, jobIds } of loads) await page.send({ type: 'loaded', request, jobIds, series: full.series.filter((entry) => jobIds.includes(entry.jobId)) });
    const after = await page.report('the new snapshot', (r) => r.runs === 200 && r.selected.length === 2);
    assert.equal(after.points, 0, 'the stale answers were not drawn');
    await page.send({ type: 'loaded', request: again.request, jobIds: again.jobIds, series: full.series.filter((entry) => again.jobIds.includes(entry.jobId)) });
    await page.report('the answer to the new request drawn', (r) => r.points === 2 * 100 * 2);
  });

  it('zooms a chart: asks the extension for that range at full detail, and draws what it answers', async () => {
    const opened = (page = await DashboardPage.open(browser, { theme: 'dark' }));
    await page.send({ type: 'snapshot', ...experimentSnapshot(1, 1000, 100) });
    const whole = (await page.report('rendered', (r) => r.charts.length === 2)).points;
    const plot = page.page.locator('.chart[data-metric="loss"] .u-over');
    const dragOverSecondQuarter = async () => {
      const box = (await plot.boundingBox())!;
      await opened.page.mouse.move(box.x + box.width * 0.25, box.y + box.height / 2);
      await opened.page.mouse.down();
      await opened.page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2, { steps: 5 });
      await opened.page.mouse.up();
      const range = ofType(await opened.posted(), 'range').at(-1);
      assert.ok(range && range.range, 'a range request after the drag');
      return { ...range, range: range.range };
    };
    const range = await dragOverSecondQuarter();
    assert.deepEqual([range.names, range.jobIds, range.axis, range.maxPoints], [['loss'], [1], 'step', 100]);
    assert.ok(range.range.min > 150 && range.range.max < 600 && range.range.min < range.range.max, JSON.stringify(range.range));
    const detail = curve(sweepRun(1), 'loss', Math.round(range.range.max - range.range.min), Math.round(range.range.min));
    await page.send({ type: 'series', series: [detail], range: { axis: 'step', ...range.range } });
    await page.report('the zoomed detail drawn', (r) => r.points === detail.value.length + 1000);
    // A new plot (here for the log scale) ends the zoom: the whole series is drawn again, and the same drag spans as much of it as before.
    await page.page.locator('[data-control="log"]').click();
    await page.report('the whole series drawn again', (r) => r.points === whole);
    const again = await dragOverSecondQuarter();
    const span = (r: { min: number; max: number }) => r.max - r.min;
    assert.ok(Math.abs(span(again.range) - span(range.range)) < span(range.range) * 0.2, `${JSON.stringify(again.range)} spans as much as ${JSON.stringify(range.range)}`);
  });

  it('shows a run: its record, log tail and actions', async () => {
    page = await DashboardPage.open(browser, { theme: 'dark' });
    const job = sweepRun(2, { state: 'running', endedAt: undefined, exitCode: undefined });
    await page.send({ type: 'snapshot', ...runsSnapshot({ kind: 'run', jobId: 2 }, 'Run lr-sweep[1] #2', [job], [curve(job, 'loss', 120), curve(job, 'acc', 120)], { logTail: 'epoch 1\nepoch 2\n' }) });
    await page.report('run rendered', (r) => r.charts.length === 2);
    await page.send({ type: 'log', data: 'epoch 3\n', reset: false });
    await waitForText(page, 'pre.log', 'epoch 1\nepoch 2\nepoch 3\n');
    const record = await page.page.locator('.record-table').textContent();
    for (const text of ['python3 train.py --lr 0.03 --seed 0', 'aaaaaaaaaaaa (uncommitted changes) on main', 'NVIDIA A100-SXM4-80GB', 'WANDB_MODE']) assert.ok(record?.includes(text), `the record shows ${text}`);
    const actions = await page.page.locator('header vscode-button').evaluateAll((buttons) => buttons.map((button) => button.getAttribute('data-action')));
    assert.deepEqual(actions, ['cancel', 'rerun', 'rerunWithParams', 'showLogs', 'openDiff']);
    await page.page.locator('header vscode-button[data-action="rerunWithParams"]').click();
    assert.deepEqual(ofType(await page.posted(), 'action').at(-1), { type: 'action', action: 'rerunWithParams', jobIds: [2] });
    await page.screenshot('dashboard-run-dark');
  });

  it('compares runs: parameters and records side by side with the differences marked', async () => {
    page = await DashboardPage.open(browser, { theme: 'light' });
    const jobs = [sweepRun(1), sweepRun(4)];
    await page.send({ type: 'snapshot', ...runsSnapshot({ kind: 'compare', jobIds: [1, 4] }, 'Compare runs 1, 4', jobs, jobs.flatMap((job) => [curve(job, 'loss', 200)])) });
    const report = await page.report('compare rendered', (r) => r.charts.length === 1);
    assert.equal(report.points, 400);
    const differing = await page.page.locator('.record-table tr.differs th').allTextContents();
    // Same lr, other seed; run 4 ran with uncommitted changes, on the other host and GPU.
    assert.deepEqual(differing, ['param seed', 'command', 'host / GPU', 'git commit', 'started', 'ended', 'env CUDA_VISIBLE_DEVICES']);
    await page.screenshot('dashboard-compare-light');
  });

  for (const theme of ['light', 'dark'] as const) {
    it(`draws each GPU's sampled utilization under its run bars, with the value on hover, and takes new samples live (${theme})`, async () => {
      page = await DashboardPage.open(browser, { theme });
      const snapshot = gpuTimelineSnapshot();
      const sampled = snapshot.gpuSamples!.series.reduce((sum, series) => sum + series.at.length, 0);
      await page.send({ type: 'snapshot', ...snapshot });
      await page.report('the timeline with its samples', (r) => r.runs === 7 && r.samples === sampled);
      const lanes = page.page.locator('.timeline .lane[data-lane]');
      // The runs' GPUs, and local GPU 1, which no run held but which was sampled (someone else's job).
      assert.deepEqual(await lanes.evaluateAll((rows) => rows.map((row) => row.getAttribute('data-lane'))), ['gpu-box-1 · GPU 1', 'gpu-box-2 · GPU 0', 'local · GPU 0', 'local · GPU 1']);
      assert.equal(await page.page.locator('.timeline svg.util').count(), 3);
      assert.equal(await page.page.locator('.lane[data-lane="gpu-box-2 · GPU 0"] .util-none').textContent(), 'utilization not sampled');
      assert.equal(await page.page.locator('.timeline .bar').count(), 7);
      // gpu-box-1 was unreachable for two minutes: its line has a gap, the others are whole.
      const pieces = async (lane: string) => ((await page!.page.locator(`.lane[data-lane="${lane}"] path.util-line`).getAttribute('d')) ?? '').split('M').length - 1;
      assert.deepEqual([await pieces('gpu-box-1 · GPU 1'), await pieces('local · GPU 0')], [2, 1]);
      assert.match((await page.page.locator('.util-legend').textContent()) ?? '', new RegExp(`GPU utilization .*sampled every ${SAMPLE_INTERVAL_MS / 1000}s\\.$`));
      const busy = await page.page.locator('.lane[data-lane="local · GPU 0"] svg.util').getAttribute('aria-label');
      assert.match(busy ?? '', /^local · GPU 0 utilization: mean \d+%, peak (8\d|9\d)%$/);
      // Hover over run 2's bar (local GPU 0, busy): the sample there, in words.
      const bar = (await page.page.locator('.bar[data-run="2"]').boundingBox())!;
      await page.page.mouse.move(bar.x + bar.width / 2, bar.y + bar.height + 8);
      const tip = page.page.locator('.util-tip');
      await waitFor('the hover value', async () => await tip.isVisible());
      assert.match((await tip.textContent()) ?? '', /^local · GPU 0 · .+: (6[89]|[7-9]\d)% utilization, 30 GiB used$/);
      assert.deepEqual(await page.cspViolations(), []);
      await page.screenshot(`gpu-timeline-${theme}`);
      // Live: the next probe's samples (the extension turns host updates into these).
      const last = snapshot.gpuSamples!.series[0]!.at.at(-1)!;
      await page.send({ type: 'samples', series: [{ host: 'local', gpu: 0, at: [last + SAMPLE_INTERVAL_MS], utilization: [64], memoryUsedBytes: [2 ** 30], samples: [1], total: 1 }] });
      await page.report('the new sample drawn', (r) => r.samples === sampled + 1);
      // A sample the page holds already (sent twice) is drawn once.
      const renders = ofType(await page.posted(), 'rendered').length;
      await page.send({ type: 'samples', series: [{ host: 'local', gpu: 0, at: [last + SAMPLE_INTERVAL_MS], utilization: [64], memoryUsedBytes: [2 ** 30], samples: [1], total: 1 }] });
      await waitFor('a render after the repeated sample', async () => ofType(await page!.posted(), 'rendered').length > renders);
      assert.equal(ofType(await page.posted(), 'rendered').at(-1)!.samples, sampled + 1);
    });
  }

  it('says when utilization is not sampled, and draws none on an experiment page', async () => {
    page = await DashboardPage.open(browser, { theme: 'dark' });
    const snapshot = gpuTimelineSnapshot();
    await page.send({ type: 'snapshot', ...snapshot, gpuSamples: { intervalMs: SAMPLE_INTERVAL_MS, series: [] } });
    await page.report('the timeline without samples', (r) => r.runs === 7);
    assert.equal(await page.page.locator('.timeline .lane[data-lane]').count(), 3, 'a lane per GPU a run held');
    assert.equal(await page.page.locator('.timeline .util-none').count(), 3);
    assert.equal(await page.page.locator('.timeline svg.util').count(), 0);
    assert.match((await page.page.locator('.util-legend').textContent()) ?? '', /^Utilization not sampled/);
    await page.send({ type: 'snapshot', ...experimentSnapshot(3, 10) });
    await page.report('the experiment', (r) => r.runs === 3 && r.samples === 0);
    assert.equal(await page.page.locator('.timeline .util-none, .timeline .util-legend').count(), 0, 'the experiment page keeps its plain timeline');
  });
});

async function waitForText(page: DashboardPage, selector: string, text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let seen: string | null = null;
  while (Date.now() < deadline) {
    seen = await page.page.locator(selector).textContent();
    if (seen === text) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(seen, text);
}
