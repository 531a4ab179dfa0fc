import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobView } from '../../common/protocol';
import { DaemonHarness } from '../support/daemon-harness';

/** A real sweep of Python scripts reporting a loss: the runs that cannot win are stopped early. */
describe('early stopping of a sweep', function () {
  this.timeout(90_000);
  let harness: DaemonHarness;
  let workdir: string;

  beforeEach(() => {
    harness = new DaemonHarness();
    workdir = mkdtempSync(join(tmpdir(), 'drover-early-stop-'));
    // A good run's loss is 1/step, a bad one's 10/step; 20 steps of 0.15 s.
    writeFileSync(
      join(workdir, 'train.py'),
      [
        'import sys, time',
        'scale = 1.0 if sys.argv[1] == "good" else 10.0',
        'for step in range(1, 21):',
        '    print(f"::metric step={step} loss={scale / step}", flush=True)',
        '    time.sleep(0.15)',
        'print("done", flush=True)',
      ].join('\n'),
    );
  });

  afterEach(async () => {
    await harness.dispose();
    rmSync(workdir, { recursive: true, force: true });
  });

  it('stops the runs worse than the median (as stopped, not failed) and lets the good ones finish', async () => {
    const spec = join(workdir, 'sweep.drover.yaml');
    writeFileSync(
      spec,
      [
        'name: es',
        'run: /usr/bin/python3 train.py ${{ params.quality }} ${{ params.seed }}',
        'resources: { cpus: 0.1 }',
        'sweep:',
        '  parameters: { quality: [good, bad], seed: [1, 2] }',
        '  early_stop: { metric: loss, mode: min, rule: median, grace_steps: 2, min_runs: 2 }',
        '',
      ].join('\n'),
    );
    const submitted = await harness.cli(['submit', '--wait', '--json', spec], workdir);
    assert.equal(submitted.code, 0, `stopped runs end a sweep normally: ${submitted.stderr}`);
    const runs = JSON.parse(submitted.stdout) as JobView[];
    const good = runs.filter((run) => run.params['quality'] === 'good');
    const bad = runs.filter((run) => run.params['quality'] === 'bad');
    assert.deepEqual(good.map((run) => run.state), ['succeeded', 'succeeded']);
    assert.deepEqual(bad.map((run) => run.state), ['stopped', 'stopped']);
    for (const run of bad) assert.match(run.reason ?? '', /^stopped early: loss \d+(\.\d+)? by step \d+ is worse than the median [\d.]+ of \d other runs there \(median stopping rule\)$/);
    const client = await harness.client();
    try {
      for (const run of bad) {
        const loss = (await client.request('drover/metrics', { id: run.id })).find((series) => series.name === 'loss')!;
        assert.ok(loss.points.at(-1)!.step! < 20, `run ${run.id} was stopped before its last step (${loss.points.at(-1)!.step})`);
        const detail = await client.request('drover/job', { id: run.id });
        assert.equal(detail.attemptList.at(-1)!.outcome, 'stopped');
        assert.equal(detail.attemptList.length, 1, 'no retry');
      }
    } finally {
      client.close();
    }
    const listed = await harness.cli(['runs'], workdir);
    for (const run of bad) assert.match(listed.stdout, new RegExp(`^${run.id} +es/es\\[\\d\\] +stopped +.*stopped early: loss`, 'm'));
  });

  it('reads early_stop from the spec, and refuses a bad one with the line', async () => {
    const spec = join(workdir, 'bad.drover.yaml');
    writeFileSync(spec, 'name: bad\nrun: "true"\nsweep:\n  parameters: { a: [1, 2] }\n  early_stop: { mode: min, rule: sometimes }\n');
    const result = await harness.cli(['submit', spec], workdir);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /bad\.drover\.yaml:5:\d+: /);
    assert.match(result.stderr, /metric/);
    assert.match(result.stderr, /median|asha/);
  });
});
