import assert from 'node:assert/strict';
import type { GpuView, HostView, JobView } from '../../../common/protocol';
import { describeOutcome, formatElapsed, formatResources, formatMetricValue, runLabel } from '../../../extension/src/model/format';
import { queueEntries, queueOrder } from '../../../extension/src/model/queue';
import { statusText } from '../../../extension/src/model/status-text';
import { gpuDescription, gpuHolders, gpuLabel, hostDescription, orderHosts, slurmRows, slurmSectionLabel, withLiveHolders } from '../../../extension/src/model/clusters';
import { parseNodes, parsePartitions, parseSqueueJson } from '../../../runner/src/hosts/slurm/slurm-state';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../support/daemon-harness';

const T0 = 1_700_000_000_000;

function job(id: number, fields: Partial<JobView> = {}): JobView {
  return { id, submissionId: 1, specName: 'train', key: 'train', state: 'queued', priority: 0, resources: { gpus: { count: 1 } }, params: {}, attempts: 0, createdAt: T0, ...fields };
}

function gpu(index: number, fields: Partial<GpuView> = {}): GpuView {
  return { index, uuid: `GPU-${index}`, name: 'NVIDIA A100-SXM4-40GB', memoryTotalBytes: 40 * 2 ** 30, memoryUsedBytes: 0, utilizationPercent: 0, foreignPids: [], ...fields };
}

function host(name: string, gpus: GpuView[], fields: Partial<HostView> = {}): HostView {
  return { name, kind: 'local', state: 'up', os: 'linux', cpus: 16, memoryBytes: 64 * 2 ** 30, gpus, updatedAt: T0, ...fields };
}

describe('extension: status bar text', () => {
  it('counts running and queued runs and the GPUs Drover holds of all it sees', () => {
    const jobs = [
      job(1, { state: 'running', host: 'local', gpus: [0] }),
      job(2, { state: 'running', host: 'local', gpus: [1] }),
      job(3, { state: 'running', host: 'box', gpus: [0, 1] }),
      ...[4, 5, 6, 7, 8].map((id) => job(id)),
      job(9, { state: 'succeeded', host: 'local', gpus: [3] }),
    ];
    const hosts = [host('local', [gpu(0), gpu(1), gpu(2, { foreignPids: [99] }), gpu(3)]), host('box', [gpu(0), gpu(1)], { kind: 'ssh' })];
    assert.equal(statusText('connected', jobs, hosts), 'Drover: 3 running · 5 queued · 4/6 GPUs');
  });

  it("takes GPU holders from the runs, not from the host's last probe", () => {
    // The probe saw run 9 on GPU 0; it has ended since, and run 10 started on GPU 1.
    const hosts = [host('local', [gpu(0, { jobId: 9 }), gpu(1)])];
    const jobs = [job(9, { state: 'succeeded', host: 'local', gpus: [0] }), job(10, { state: 'running', host: 'local', gpus: [1] })];
    assert.equal(statusText('connected', jobs, hosts), 'Drover: 1 running · 0 queued · 1/2 GPUs');
    const [live] = hosts.map((entry) => withLiveHolders(entry, gpuHolders(jobs)));
    assert.deepEqual(
      live!.gpus.map((entry) => entry.jobId),
      [undefined, 10],
    );
  });

  it('leaves unreachable hosts out of the GPU total', () => {
    const hosts = [host('local', [gpu(0)]), host('gone', [gpu(0), gpu(1)], { kind: 'ssh', state: 'unreachable', message: 'timed out' })];
    assert.equal(statusText('connected', [], hosts), 'Drover: 0 running · 0 queued · 0/1 GPUs');
  });

  it('says when the daemon is stopped or being reached', () => {
    assert.equal(statusText('stopped', [job(1)], []), 'Drover: daemon stopped');
    assert.equal(statusText('connecting', [], []), 'Drover: connecting…');
  });
});

describe('extension: queue', () => {
  it('puts running runs first, then queued ones by priority, then first come first served', () => {
    const jobs = [job(1), job(2, { priority: 5 }), job(3, { state: 'running', startedAt: T0 + 2000 }), job(4, { state: 'failed' }), job(5), job(6, { state: 'running', startedAt: T0 + 1000 }), job(7, { priority: 5 })];
    assert.deepEqual(
      queueOrder(jobs).map((entry) => entry.id),
      [6, 3, 2, 7, 1, 5],
    );
  });

  it('numbers queued runs from 1 and says how long each waited and why', () => {
    const entries = queueEntries([job(1, { reason: 'waiting for 1 GPU (all 2 are busy)' }), job(2, { priority: 1, resources: { gpus: { count: 2, type: 'A100' }, cpus: 4, memoryBytes: 16 * 2 ** 30 } }), job(3, { state: 'running', startedAt: T0, host: 'local', gpus: [0, 1] })], T0 + 64_000);
    assert.deepEqual(
      entries.map((entry) => [entry.job.id, entry.position]),
      [[3, undefined], [2, 1], [1, 2]],
    );
    assert.equal(entries[0]!.description, 'running on local GPU 0,1 · 1m04s');
    assert.equal(entries[1]!.description, '#1 · 2× A100 GPUs, 4 CPUs, 16 GiB · waiting 1m04s · priority 1');
    assert.equal(entries[2]!.tooltip, 'Pending: waiting for 1 GPU (all 2 are busy)\nAsked for 1 GPU');
  });

  it('flags a running run whose GPUs sit idle', () => {
    const [entry] = queueEntries([job(3, { state: 'running', startedAt: T0, host: 'box', gpus: [1], gpusIdleSince: T0 + 4_000 })], T0 + 64_000);
    assert.equal(entry!.description, 'running on box GPU 1 · 1m04s · GPUs idle 1m00s');
    assert.match(entry!.tooltip, /\nIts GPUs have been at ~0% utilization for 1m00s$/);
  });

  it('formats elapsed times for a tree row', () => {
    assert.equal(formatElapsed(-5), '0s');
    assert.equal(formatElapsed(42_900), '42s');
    assert.equal(formatElapsed(184_000), '3m04s');
    assert.equal(formatElapsed(3_720_000), '1h02m');
    assert.equal(formatElapsed(2 * 86_400_000 + 3 * 3_600_000), '2d03h');
  });

  it('describes resources, runs and outcomes in the words the views use', () => {
    assert.equal(formatResources({ gpus: { count: 0 } }), 'CPU only');
    assert.equal(formatResources({ gpus: { count: 0 }, cpus: 1 }), 'CPU only, 1 CPU');
    assert.equal(formatResources({ gpus: { count: 1, memoryBytes: 24 * 2 ** 30 } }), '1 GPU (≥24 GiB)');
    assert.equal(runLabel(job(12)), '12 train');
    assert.equal(runLabel(job(13, { specName: 'lr-sweep', key: 'lr-sweep[3]' })), '13 lr-sweep/lr-sweep[3]');
    assert.equal(describeOutcome(job(1, { state: 'failed', exitCode: 3 })), 'failed (exit 3)');
    assert.equal(describeOutcome(job(1, { state: 'cancelled', signal: 'SIGTERM' })), 'cancelled (SIGTERM)');
    assert.equal(describeOutcome(job(1, { state: 'succeeded', exitCode: 0 })), 'succeeded');
    assert.equal(formatMetricValue(0.123456), '0.1235');
    assert.equal(formatMetricValue(0.00001234), '1.23e-5');
    assert.equal(formatMetricValue(1234567), '1.23e+6');
  });
});

describe('extension: clusters', () => {
  it('shows a GPU with its model, memory, load and the run holding it', () => {
    const held = gpu(1, { memoryUsedBytes: 17 * 2 ** 30, utilizationPercent: 37, jobId: 12 });
    assert.equal(gpuLabel(held), 'GPU 1: A100-SXM4-40GB');
    assert.equal(gpuDescription(held), '17/40 GiB · 37% · run 12');
    assert.equal(gpuDescription(gpu(0, { memoryUsedBytes: 1.5 * 2 ** 30, utilizationPercent: null, foreignPids: [4242] })), '1.5/40 GiB · util n/a · other user (pid 4242)');
    assert.equal(gpuDescription(gpu(2)), '0/40 GiB · 0% · free');
  });

  it('orders the local host first and says why a host is unreachable', () => {
    const hosts = [host('zeta', [], { kind: 'ssh' }), host('alpha', [], { kind: 'ssh', state: 'unreachable', message: 'connection refused' }), host('local', [gpu(0, { jobId: 3 }), gpu(1)])];
    assert.deepEqual(
      orderHosts(hosts).map((entry) => entry.name),
      ['local', 'alpha', 'zeta'],
    );
    assert.equal(hostDescription(hosts[1]!), 'unreachable: connection refused');
    assert.equal(hostDescription(hosts[2]!), 'this machine · 1/2 GPUs in use');
  });

  it('shows a SLURM cluster’s partitions, nodes with their GRES and use, and the user’s live jobs (from recorded sinfo/squeue output)', () => {
    const fixture = (name: string) => readFileSync(join(ROOT, 'test/fixtures/slurm', name), 'utf8');
    const jobs = parseSqueueJson(fixture('squeue-22.05.json')).map((job) => ({ id: job.id, name: job.name, state: job.state, reason: job.reason, partition: job.partition, nodes: job.nodes }));
    const cluster = host('cluster', [], {
      kind: 'slurm',
      slurm: { via: 'login1', partitions: parsePartitions(fixture('sinfo-partitions-22.05.txt')), nodes: parseNodes(fixture('sinfo-nodes-22.05.txt')), jobs },
    });
    assert.equal(hostDescription(cluster), 'SLURM via login1 · 1 node · your jobs: 1 running, 2 pending');
    assert.deepEqual(slurmRows(cluster, 'partitions').map((row) => row.label), ['debug (default)', 'long']);
    assert.deepEqual(slurmRows(cluster, 'nodes').map((row) => row.description), ['mixed · 1/8 CPUs · gpu:a100:2 (used gpu:a100:1(IDX:0))']);
    assert.deepEqual(slurmRows(cluster, 'jobs').map((row) => `${row.label}: ${row.description}`), ['16_0 arr: running on vm', '16_1 arr: pending: JobArrayTaskLimit', '16_2 arr: pending: JobArrayTaskLimit']);
    assert.equal(slurmSectionLabel(cluster, 'jobs'), 'Your jobs (3)');
  });
});
