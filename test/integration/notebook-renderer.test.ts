import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { CELL_METRICS_MIME, type CellMetricsOutput } from '../../common/protocol';
import { ROOT } from '../support/daemon-harness';

const CHROMIUM = '/usr/bin/chromium';
const BUNDLE = join(ROOT, 'dist/notebook-metrics-renderer.js');

/**
 * The cell-metrics notebook renderer, as VS Code loads it: the bundled ES module imported in a
 * real (headless) Chromium, given an output item and a postMessage, drawing into a DOM element.
 */
describe(`the notebook renderer for ${CELL_METRICS_MIME}`, function () {
  this.timeout(60_000);
  let browser: Browser;

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`      skipped: no Chromium at ${CHROMIUM} (Debian package chromium)`);
      this.skip();
    }
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless', '--disable-gpu'] });
  });

  after(async () => browser?.close());

  it('draws a sparkline and the last value per metric, and its link asks for the dashboard', async () => {
    const page = await browser.newPage();
    const metrics: CellMetricsOutput = { jobId: 42, runLabel: '42 analysis', cell: 2, series: { loss: [{ step: 1, value: 0.5 }, { step: 2, value: 0.25 }, { step: 3, value: 0.125 }], acc: [{ step: null, value: 0.9 }] } };
    const source = `data:text/javascript;base64,${readFileSync(BUNDLE).toString('base64')}`;
    // Page code as text: it runs in the browser, where the test project's types (no DOM) do not reach.
    const script = `(async () => {
      const module = await import(${JSON.stringify(source)});
      const posted = [];
      const element = document.createElement('div');
      document.body.append(element);
      module.activate({ postMessage: (message) => posted.push(message) }).renderOutputItem({ json: () => (${JSON.stringify(metrics)}) }, element);
      const rows = [...element.querySelectorAll('[data-metric]')].map((row) => ({
        name: row.dataset.metric,
        text: row.textContent,
        points: row.querySelector('polyline')?.getAttribute('points') ?? null,
        dots: row.querySelectorAll('circle').length,
      }));
      element.querySelector('a').click();
      return { rows, posted, link: element.querySelector('a').textContent };
    })()`;
    const drawn = (await page.evaluate(script)) as { rows: { name: string; text: string; points: string | null; dots: number }[]; posted: unknown[]; link: string };
    assert.deepEqual(drawn.rows.map((row) => [row.name, row.text, row.dots]), [['loss', 'loss0.125', 0], ['acc', 'acc0.9', 1]]);
    // Three points across the width, the highest value at the top (y = 2) and the lowest at the bottom (y = 26).
    assert.equal(drawn.rows[0]!.points, '2.0,2.0 80.0,18.0 158.0,26.0');
    assert.equal(drawn.link, 'Open dashboard (run 42)');
    assert.deepEqual(drawn.posted, [{ type: 'openDashboard', jobId: 42 }]);
  });
});
