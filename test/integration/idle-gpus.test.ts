import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobView } from '../../common/protocol';
import { DaemonHarness, FIXTURE_GPUS, waitFor } from '../support/daemon-harness';

/** A run that holds a GPU doing nothing is flagged, from the utilization the host probes report. */
describe('idle GPUs', function () {
  this.timeout(60_000);
  let harness: DaemonHarness;
  let dir: string;
  let gpuState: string;

  /** The nvidia-smi fixture's state with GPU 1 (the free one) at this utilization. */
  function setUtilization(percent: number): void {
    const state = JSON.parse(readFileSync(join(FIXTURE_GPUS, 'two-a100.json'), 'utf8')) as { gpus: { utilization: number }[] };
    state.gpus[1]!.utilization = percent;
    writeFileSync(`${gpuState}.tmp`, JSON.stringify(state));
    // Whole or not at all, as a probe may read it at any moment.
    renameSync(`${gpuState}.tmp`, gpuState);
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-idle-'));
    gpuState = join(dir, 'gpus.json');
    setUtilization(0);
    harness = new DaemonHarness({ gpus: 'two-a100.json', env: { DROVER_FAKE_GPUS: gpuState, DROVER_HOST_PROBE_MS: '250', DROVER_IDLE_GPU_MS: '600' } });
  });

  afterEach(async () => {
    await harness.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('flags a run whose GPU stays at 0% for the idle time, in the protocol and `drover ps`, and clears it when the GPU works', async () => {
    const client = await harness.client();
    try {
      const [run] = (await client.request('drover/submit', { specText: 'name: idler\nrun: sleep 30\nresources: { gpus: 1 }\n', cwd: dir })).jobs;
      const job = () => client.request('drover/job', { id: run!.id });
      const flagged = await waitFor('the run to be flagged idle', async () => {
        const detail = await job();
        return detail.gpusIdleSince !== undefined ? detail : undefined;
      });
      assert.equal(flagged.state, 'running');
      assert.deepEqual(flagged.gpus, [1]);
      assert.ok(flagged.gpusIdleSince! >= flagged.startedAt! - 1000);
      // Told to subscribers too (the extension's trees read the event).
      const listed = await client.request('drover/jobs', { states: ['running'] });
      assert.equal(listed[0]!.gpusIdleSince, flagged.gpusIdleSince);
      const ps = await harness.cli(['ps']);
      assert.match(ps.stdout, new RegExp(`^${run!.id} +idler +running +local:1 +.* · GPUs idle \\d+s$`, 'm'));

      setUtilization(85);
      await waitFor('the flag to clear once the GPU works', async () => ((await job()).gpusIdleSince === undefined ? true : undefined));
      assert.doesNotMatch((await harness.cli(['ps'])).stdout, /GPUs idle/);
      await client.request('drover/cancel', { ids: [run!.id] });
      const ended: JobView = await waitFor('the run to end', async () => {
        const detail = await job();
        return detail.state === 'cancelled' ? detail : undefined;
      });
      assert.equal(ended.gpusIdleSince, undefined);
    } finally {
      client.close();
    }
  });
});
