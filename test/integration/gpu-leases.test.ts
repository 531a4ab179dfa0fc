import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobView } from '../../common/protocol';
import { DaemonHarness, waitFor } from '../support/daemon-harness';
import { SshTestbed } from '../support/ssh-testbed';
import { skipUnlessAvailable } from '../support/machine-lock';

/**
 * Two Drovers with no scheduler between them (separate homes, as two users have) sharing one SSH
 * box: the GPU leases taken on the box itself keep them off each other's GPUs.
 */
describe('GPU leases on a shared SSH host', function () {
  this.timeout(120_000);
  let testbed: SshTestbed;
  let daemons: DaemonHarness[] = [];
  let workdir: string;
  /** Where the runs wait for the test to let them end (the hosts share this machine's /tmp). */
  let gates: string;

  before(async function () {
    skipUnlessAvailable(this, 'the SSH test hosts', SshTestbed.unavailable());
    testbed = await SshTestbed.start({ hosts: [{ name: 'h1', gpus: { driverVersion: '550.54.15', gpus: [a100(), a100()], processes: [] } }] });
  });

  after(async () => testbed?.dispose());

  beforeEach(() => {
    daemons = [0, 1].map(() => new DaemonHarness({ env: { DROVER_SSH_CONFIG: testbed.sshConfigPath, DROVER_HOST_PROBE_MS: '500' } }));
    workdir = mkdtempSync(join(tmpdir(), 'drover-lease-work-'));
    gates = mkdtempSync(join(tmpdir(), 'drover-lease-gates-'));
    chmodSync(gates, 0o777);
    // Records its GPUs, then holds them until its gate opens.
    writeFileSync(join(workdir, 'hold.sh'), 'echo "start $CUDA_VISIBLE_DEVICES"\nwhile [ ! -e "$1" ]; do sleep 0.05; done\necho "end $CUDA_VISIBLE_DEVICES"\n');
  });

  afterEach(async () => {
    await Promise.all(daemons.map((daemon) => daemon.dispose()));
    rmSync(workdir, { recursive: true, force: true });
    rmSync(gates, { recursive: true, force: true });
    for (const name of readdirSync(testbed.gpuLeaseDir('h1'))) rmSync(join(testbed.gpuLeaseDir('h1'), name), { force: true });
  });

  const submit = async (daemon: DaemonHarness, name: string, gpus: number) =>
    (await daemon.request('drover/submit', { specText: `name: ${name}\nrun: sh hold.sh ${join(gates, name)}\nresources: { gpus: ${gpus} }\n`, cwd: workdir, host: 'h1' })).jobs[0]!;
  const job = (daemon: DaemonHarness, id: number) => daemon.request('drover/job', { id });
  const log = async (daemon: DaemonHarness, id: number) => (await daemon.cli(['logs', String(id)])).stdout;
  const untilState = (daemon: DaemonHarness, id: number, states: JobView['state'][]) =>
    waitFor(`run ${id} to be ${states.join(' or ')}`, async () => {
      const detail = await job(daemon, id);
      return states.includes(detail.state) ? detail : undefined;
    }, 60_000);
  const untilLog = (daemon: DaemonHarness, id: number, pattern: RegExp) =>
    waitFor(`run ${id}'s log to match ${pattern}`, async () => pattern.exec(await log(daemon, id)) ?? undefined, 60_000);

  async function addH1(daemon: DaemonHarness): Promise<string[]> {
    // A busy machine may drop the first handshake: the host stays in the pool and is retried.
    const added = await daemon.cli(['hosts', 'add', 'h1']);
    assert.match(added.stdout, /h1/, added.stderr);
    const h1 = await waitFor('h1 up', async () => (await daemon.request('drover/hosts', {})).find((host) => host.name === 'h1' && host.state === 'up'));
    return h1.gpus.map((gpu) => gpu.uuid);
  }

  it('never gives one GPU to two daemons: the second waits, says who holds it, and starts when the first ends', async () => {
    const [a, b] = daemons as [DaemonHarness, DaemonHarness];
    await Promise.all([addH1(a), addH1(b)]);
    // Both see two free GPUs and place their two-GPU run at the same moment.
    const [runA, runB] = await Promise.all([submit(a, 'alpha', 2), submit(b, 'beta', 2)]);
    const first = await waitFor('one run to start its process', async () => {
      if (/^start /m.test(await log(a, runA.id))) return { winner: a, winnerRun: runA, loser: b, loserRun: runB, loserName: 'beta', winnerName: 'alpha' };
      if (/^start /m.test(await log(b, runB.id))) return { winner: b, winnerRun: runB, loser: a, loserRun: runA, loserName: 'alpha', winnerName: 'beta' };
      return undefined;
    }, 60_000).catch(async (error: Error) => {
      const states = await Promise.all([job(a, runA.id), job(b, runB.id)]);
      throw new Error(`${error.message}: ${JSON.stringify(states.map((detail) => [detail.state, detail.reason, detail.attemptList]))}`);
    });
    const { winner, winnerRun, loser, loserRun } = first;
    assert.match(await log(winner, winnerRun.id), /^start 0,1$/m);
    // The other waits, naming the holder (the lease the probe or its own launch found).
    let last: JobView | undefined;
    const waiting = await waitFor('the other run to wait on the lease', async () => {
      const detail = (last = await job(loser, loserRun.id));
      return detail.state === 'queued' && /leased by .*'s Drover on .* \(run \d+\)/.test(detail.reason ?? '') ? detail : undefined;
    }, 60_000).catch((error: Error) => {
      throw new Error(`${error.message}; it is ${last?.state}: ${last?.reason}`);
    });
    assert.match(waiting.reason!, new RegExp(`GPU 0 on h1 is leased by .*\\(run ${winnerRun.id}\\)`));
    assert.equal(await log(loser, loserRun.id), '', 'it never started');
    // The lease on the host names its owner.
    const leases = readdirSync(testbed.gpuLeaseDir('h1')).filter((name) => name.startsWith('GPU-'));
    assert.equal(leases.length, 2);
    assert.match(readFileSync(join(testbed.gpuLeaseDir('h1'), leases[0]!), 'utf8'), new RegExp(`^v=1 daemon=\\w+ user=\\S+ machine=\\S+ job=${winnerRun.id} attempt=1 pid=\\d+ `));

    writeFileSync(join(gates, first.winnerName), '');
    await untilState(winner, winnerRun.id, ['succeeded']);
    await untilLog(loser, loserRun.id, /^start 0,1$/m);
    // It started only once the first had ended: the first's end is in its log before the gate of the second opens.
    assert.match(await log(winner, winnerRun.id), /^end 0,1$/m);
    writeFileSync(join(gates, first.loserName), '');
    const done = await untilState(loser, loserRun.id, ['succeeded']);
    assert.equal(done.attemptList.length, 1, 'the refused start left no attempt behind');
    // Both released their leases when their runs ended.
    await waitFor('the leases released', () => readdirSync(testbed.gpuLeaseDir('h1')).filter((name) => name.startsWith('GPU-')).length === 0);
  });

  it("waits for a GPU another user's Drover leased, and takes over a lease whose owner is gone", async () => {
    const [a] = daemons as [DaemonHarness];
    const [gpu0, gpu1] = (await addH1(a)) as [string, string];
    const leaseDir = testbed.gpuLeaseDir('h1');
    // Mallory's run holds GPU 0 (pid 1 lives as long as the machine); GPU 1's lease is left from a run that died.
    writeFileSync(join(leaseDir, gpu0), 'v=1 daemon=ffff user=mallory machine=elsewhere job=99 attempt=1 pid=1 pstart= boot= since=1700000000\n');
    writeFileSync(join(leaseDir, gpu1), `v=1 daemon=ffff user=mallory machine=elsewhere job=98 attempt=1 pid=${deadPid()} pstart= boot= since=1700000000\n`);
    const two = await submit(a, 'two', 2);
    const waiting = await waitFor('the run to wait on the lease', async () => {
      const detail = await job(a, two.id);
      return /mallory/.test(detail.reason ?? '') ? detail : undefined;
    });
    assert.equal(waiting.state, 'queued');
    assert.match(waiting.reason!, /GPU 0 on h1 is leased by mallory's Drover on elsewhere \(run 99\) since 22:13:20 UTC/);
    assert.doesNotMatch(waiting.reason!, /GPU 1/, 'the dead run holds nothing');
    // A one-GPU run takes over the stale lease on GPU 1.
    const one = await submit(a, 'one', 1);
    await untilLog(a, one.id, /^start 1$/m);
    assert.match(readFileSync(join(leaseDir, gpu1), 'utf8'), new RegExp(`job=${one.id} attempt=1 `));
    writeFileSync(join(gates, 'one'), '');
    await untilState(a, one.id, ['succeeded']);
    // Mallory's run ends (its lease goes stale): the two-GPU run starts.
    writeFileSync(join(leaseDir, gpu0), `v=1 daemon=ffff user=mallory machine=elsewhere job=99 attempt=1 pid=${deadPid()} pstart= boot= since=1700000000\n`);
    await untilLog(a, two.id, /^start 0,1$/m);
    writeFileSync(join(gates, 'two'), '');
    await untilState(a, two.id, ['succeeded']);
    await waitFor('the leases released', () => !existsSync(join(leaseDir, gpu0)) && !existsSync(join(leaseDir, gpu1)));
  });
});

function a100() {
  return { name: 'NVIDIA A100-SXM4-40GB', memoryTotalMiB: 40960, memoryUsedMiB: 0, utilization: 0 };
}

/** A pid no process has now. */
function deadPid(): number {
  return spawnSync('true').pid!;
}

/** Two Drovers of different homes on one machine take the same leases on its GPUs. */
describe('GPU leases on the local host', function () {
  this.timeout(60_000);
  let daemons: DaemonHarness[] = [];
  let leases: string;
  let workdir: string;

  beforeEach(function () {
    if (process.platform === 'win32') this.skip();
    leases = mkdtempSync(join(tmpdir(), 'drover-local-leases-'));
    workdir = mkdtempSync(join(tmpdir(), 'drover-lease-work-'));
    writeFileSync(join(workdir, 'hold.sh'), 'echo "start $CUDA_VISIBLE_DEVICES"\nwhile [ ! -e "$1" ]; do sleep 0.05; done\n');
    // GPU 0 of this fixture is held by a foreign process: both daemons want GPU 1.
    daemons = [0, 1].map(() => new DaemonHarness({ gpus: 'two-a100.json', env: { DROVER_GPU_LEASE_DIR: leases, DROVER_HOST_PROBE_MS: '300' } }));
  });

  afterEach(async () => {
    await Promise.all(daemons.map((daemon) => daemon.dispose()));
    rmSync(leases, { recursive: true, force: true });
    rmSync(workdir, { recursive: true, force: true });
  });

  it('gives the one free GPU to one daemon at a time', async () => {
    const [a, b] = daemons as [DaemonHarness, DaemonHarness];
    const submit = async (daemon: DaemonHarness, name: string) => {
      const client = await daemon.client();
      try {
        return (await client.request('drover/submit', { specText: `name: ${name}\nrun: sh hold.sh ${join(workdir, `${name}.gate`)}\nresources: { gpus: 1 }\n`, cwd: workdir })).jobs[0]!;
      } finally {
        client.close();
      }
    };
    const job = async (daemon: DaemonHarness, id: number) => {
      const client = await daemon.client();
      try {
        return await client.request('drover/job', { id });
      } finally {
        client.close();
      }
    };
    const log = async (daemon: DaemonHarness, id: number) => (await daemon.cli(['logs', String(id)])).stdout;
    const [runA, runB] = await Promise.all([submit(a, 'alpha'), submit(b, 'beta')]);
    const order = await waitFor('one run to start', async () => {
      if (/^start 1$/m.test(await log(a, runA.id))) return [[a, runA, 'alpha'], [b, runB, 'beta']] as const;
      if (/^start 1$/m.test(await log(b, runB.id))) return [[b, runB, 'beta'], [a, runA, 'alpha']] as const;
      return undefined;
    });
    const [[winner, winnerRun, winnerName], [loser, loserRun, loserName]] = order;
    const waiting = await waitFor('the other to wait on the lease', async () => {
      const detail = await job(loser, loserRun.id);
      return detail.state === 'queued' && /GPU 1 on local is leased by .*\(run \d+\)/.test(detail.reason ?? '') ? detail : undefined;
    });
    assert.match(waiting.reason!, /waiting for 1 GPU/);
    assert.equal(await log(loser, loserRun.id), '');
    writeFileSync(join(workdir, `${winnerName}.gate`), '');
    await waitFor('the first to succeed', async () => (await job(winner, winnerRun.id)).state === 'succeeded');
    await waitFor('the second to start on GPU 1', async () => /^start 1$/m.test(await log(loser, loserRun.id)));
    writeFileSync(join(workdir, `${loserName}.gate`), '');
    await waitFor('the second to succeed', async () => (await job(loser, loserRun.id)).state === 'succeeded');
  });
});
