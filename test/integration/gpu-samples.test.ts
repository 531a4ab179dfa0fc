import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GpuSampleSeries, HostView } from '../../common/protocol';
import { newSamples, readGpuSamples } from '../../extension/src/dashboard/dashboard-data';
import { DaemonHarness, FIXTURE_GPUS, waitFor } from '../support/daemon-harness';

const MIB = 2 ** 20;

/** The GPU timeline's utilization: every host probe is kept as a sample per GPU, and read back by `drover/gpuSamples`. */
describe('GPU utilization samples', function () {
  this.timeout(60_000);
  let harness: DaemonHarness;
  let dir: string;
  let gpuState: string;

  /** The nvidia-smi fixture's state with its two GPUs at these utilizations. */
  function setUtilization(gpu0: number, gpu1: number): void {
    const state = JSON.parse(readFileSync(join(FIXTURE_GPUS, 'two-a100.json'), 'utf8')) as { gpus: { utilization: number }[] };
    state.gpus[0]!.utilization = gpu0;
    state.gpus[1]!.utilization = gpu1;
    writeFileSync(`${gpuState}.tmp`, JSON.stringify(state));
    // Whole or not at all, as a probe may read it at any moment.
    renameSync(`${gpuState}.tmp`, gpuState);
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-samples-'));
    gpuState = join(dir, 'gpus.json');
    setUtilization(20, 0);
    harness = new DaemonHarness({ gpus: 'two-a100.json', env: { DROVER_FAKE_GPUS: gpuState, DROVER_HOST_PROBE_MS: '200' } });
  });

  afterEach(async () => {
    await harness.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records what each probe saw, as the GPU changes, answers it thinned or whole, and keeps it across a restart', async () => {
    const client = await harness.client();
    const hostEvents: HostView[] = [];
    let series: GpuSampleSeries[];
    try {
      client.on('drover/event/host', (host) => hostEvents.push(host));
      await client.request('drover/subscribe', { topics: ['hosts'] });
      const local = () => client.request('drover/gpuSamples', { hosts: ['local'] });
      await waitFor('three samples at 20%', async () => ((await local()).series[0]?.total ?? 0) >= 3);
      setUtilization(90, 45);
      const answer = await waitFor('three samples at 90%', async () => {
        const result = await local();
        return result.series[0]!.utilization.slice(-3).every((value) => value === 90) ? result : undefined;
      });
      series = answer.series;
      assert.equal(answer.intervalMs, 200, 'the probe interval, for the legend');
      assert.equal(answer.retentionMs, 7 * 24 * 3600_000);
      assert.deepEqual(series.map((entry) => [entry.host, entry.gpu]), [['local', 0], ['local', 1]]);
      const [gpu0, gpu1] = series;
      assert.equal(gpu0!.utilization[0], 20);
      assert.ok(gpu0!.utilization.includes(90) && gpu1!.utilization.includes(45), 'the change reached both GPUs');
      assert.ok(gpu0!.memoryUsedBytes.every((bytes) => bytes === 17412 * MIB), 'memory used as the probe reported it');
      assert.deepEqual(gpu0!.at, [...gpu0!.at].sort((a, b) => a - b), 'oldest first');
      assert.equal(gpu0!.total, gpu0!.at.length, 'whole: one point per probe');
      // Each sample is what a host update told subscribers (the dashboard's live path): same time, same values.
      const told = hostEvents.filter((host) => host.name === 'local' && host.gpus.length === 2);
      assert.ok(told.length >= 3, `host updates: ${told.length}`);
      for (const host of told.filter((event) => event.updatedAt <= gpu0!.at.at(-1)!)) {
        const index = gpu0!.at.indexOf(host.updatedAt);
        assert.ok(index >= 0, `the probe of ${host.updatedAt} is a sample`);
        assert.equal(gpu0!.utilization[index], host.gpus[0]!.utilizationPercent);
      }

      // Thinned: the mean of each span, between the two levels, standing for all the samples.
      const from = gpu0!.at[0]!;
      const to = gpu0!.at.at(-1)!;
      const [thin] = (await client.request('drover/gpuSamples', { hosts: ['local'], from, to, maxPoints: 2 })).series;
      assert.ok(thin!.at.length <= 2);
      assert.equal(thin!.samples.reduce((sum, count) => sum + count, 0), thin!.total);
      assert.ok(thin!.total >= gpu0!.total);
      for (const value of thin!.utilization) assert.ok(value! >= 20 && value! <= 90, `a mean of 20s and 90s: ${value}`);
      // A window before any probe holds nothing.
      assert.deepEqual((await client.request('drover/gpuSamples', { to: from - 1 })).series, []);
      await assert.rejects(client.request('drover/gpuSamples', { maxPoints: 1 }), /maxPoints must be at least 2/);

      // The GPU timeline panel: a snapshot of its window, then what host updates bring (live);
      // together they are what the daemon stored, each sample once.
      const snapshot = (await readGpuSamples(client, [], Date.now()))!;
      assert.equal(snapshot.intervalMs, 200);
      const upTo = new Map(snapshot.series.map((entry) => [entry.host, entry.at.at(-1)!]));
      const live: GpuSampleSeries[] = [];
      let read = 0;
      await waitFor('two probes after the snapshot', () => {
        for (; read < hostEvents.length; read++) live.push(...newSamples([hostEvents[read]!], upTo).filter((sample) => sample.gpu === 0));
        return live.length >= 2;
      });
      const stored = (await client.request('drover/gpuSamples', { hosts: ['local'], from: snapshot.series[0]!.at.at(-1)! + 1, to: live.at(-1)!.at[0]! })).series[0]!;
      assert.deepEqual(live.map((sample) => [sample.at[0], sample.utilization[0], sample.memoryUsedBytes[0]]), stored.at.map((at, index) => [at, stored.utilization[index], stored.memoryUsedBytes[index]]));
    } finally {
      client.close();
    }

    // Durable: a new daemon answers with what the old one recorded.
    await harness.cli(['daemon', 'stop']);
    const again = await harness.request('drover/gpuSamples', { hosts: ['local'], to: series[0]!.at.at(-1)! });
    assert.deepEqual(again.series[0]!.at, series[0]!.at);
    assert.deepEqual(again.series[0]!.utilization, series[0]!.utilization);
  });
});
