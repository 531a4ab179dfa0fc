import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from 'node-sqlite3-wasm';
import { daemonPaths } from '../../common/node/daemon-paths';
import type { DaemonRequests, JobDetail, JobView } from '../../common/protocol';
import { DaemonHarness, waitFor } from '../support/daemon-harness';
import { SlurmTestbed } from '../support/slurm-testbed';
import { SshTestbed } from '../support/ssh-testbed';
import { skipUnlessAvailable } from '../support/machine-lock';

/**
 * The daemon with a SLURM cluster, end to end: a real single-node SLURM (slurm-testbed.ts),
 * added as a pool entry with `drover hosts add NAME --slurm`, driven through the CLI and the
 * protocol as the extension does. SLURM schedules; Drover hands over, polls and mirrors logs.
 */
describe('SLURM clusters', function () {
  this.timeout(180_000);
  let testbed: SlurmTestbed;
  let harness: DaemonHarness;
  let workdir: string;

  before(async function () {
    skipUnlessAvailable(this, 'the SLURM test cluster', SlurmTestbed.unavailable());
    testbed = await SlurmTestbed.start();
    harness = new DaemonHarness({ env: { SLURM_CONF: testbed.confPath, PATH: testbed.env['PATH'], DROVER_SLURM_POLL_MS: '300' } });
    workdir = mkdtempSync(join(tmpdir(), 'drover-slurm-work-'));
    const added = await harness.cli(['hosts', 'add', 'cluster', '--slurm']);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /added cluster: up, SLURM/);
  });

  after(async () => {
    await harness?.dispose();
    await testbed?.dispose();
    if (workdir) rmSync(workdir, { recursive: true, force: true });
  });

  const rpc = <M extends keyof DaemonRequests>(method: M, params: DaemonRequests[M]['params']) => harness.request(method, params);

  const job = (id: number) => rpc('drover/job', { id });
  const submit = async (specText: string) => (await rpc('drover/submit', { specText, cwd: workdir, host: 'cluster' })).jobs;
  const untilState = (id: number, states: JobView['state'][], timeoutMs = 60_000) =>
    waitFor(
      `run ${id} to be ${states.join(' or ')}`,
      async () => {
        const detail = await job(id);
        return states.includes(detail.state) ? detail : undefined;
      },
      timeoutMs,
    );
  const slurmJobs = () =>
    testbed
      .command('squeue', ['-h', '-t', 'all', '-o', '%i|%T|%r'])
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split('|') as [string, string, string]);

  it('runs a job on SLURM with the GPUs it asked for, and mirrors its log and metrics', async () => {
    writeFileSync(join(workdir, 'train.sh'), 'echo "GPUs: $CUDA_VISIBLE_DEVICES, task on $SLURM_JOB_NODELIST"\necho "::metric step=1 loss=0.25"\n');
    const spec = join(workdir, 'train.drover.yaml');
    writeFileSync(spec, 'name: train\nrun: sh train.sh\nresources: { gpus: "a100:2", cpus: 2, memory: 200MB }\n');
    const result = await harness.cli(['submit', '--host', 'cluster', '--wait', '--json', spec], workdir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const [final] = JSON.parse(result.stdout) as JobView[];
    assert.equal(final!.state, 'succeeded');
    const id = final!.id;
    const detail = await job(id);
    assert.equal(detail.host, 'cluster');
    assert.equal(detail.attemptList[0]!.outcome, 'succeeded');
    const log = (await harness.cli(['logs', String(id)])).stdout;
    assert.match(log, /GPUs: 0,1, task on /, 'SLURM gave it both fake GPUs');
    const metrics = await rpc('drover/metrics', { id });
    assert.deepEqual(metrics.map((series) => [series.name, series.points.map((point) => point.value)]), [['loss', [0.25]]]);
  });

  it('runs a 6-point sweep as one job array, never more than max_parallel 2 at once', async () => {
    const runs = await submit(`name: sweep
run: echo "lr=\${{ params.lr }}"; sleep 2
resources: { gpus: 1 }
sweep:
  max_parallel: 2
  parameters:
    lr: [1, 2, 3, 4, 5, 6]
`);
    assert.equal(runs.length, 6);
    const ids = runs.map((run) => run.id);
    let maxDrover = 0;
    let maxSlurm = 0;
    let details: JobDetail[] = [];
    await waitFor(
      'the sweep to finish',
      async () => {
        details = await Promise.all(ids.map(job));
        maxDrover = Math.max(maxDrover, details.filter((detail) => detail.state === 'running').length);
        maxSlurm = Math.max(maxSlurm, slurmJobs().filter(([, state]) => state === 'RUNNING' || state === 'COMPLETING').length);
        return details.every((detail) => detail.state === 'succeeded');
      },
      120_000,
    );
    assert.ok(maxDrover <= 2, `Drover saw ${maxDrover} running at once`);
    assert.ok(maxSlurm <= 2, `squeue saw ${maxSlurm} running at once`);
    assert.ok(maxDrover >= 1, 'the runs were seen running');
    for (const [index, id] of ids.entries()) assert.match((await harness.cli(['logs', String(id)])).stdout, new RegExp(`^lr=${index + 1}$`, 'm'));
    // SLURM itself holds the cap: one array of 6 tasks, throttled to 2.
    const shown = testbed.command('scontrol', ['show', 'job', '-o']);
    assert.match(shown, /JobName=sweep\.sweep [^\n]*ArrayTaskThrottle=2|ArrayTaskThrottle=2 [^\n]*JobName=sweep\.sweep/);
  });

  it('runs a three-step workflow in the order of its needs, through afterok dependencies', async () => {
    const order = join(workdir, 'order.txt');
    const runs = await submit(`name: nightly
jobs:
  evaluate: { needs: [train], run: "echo evaluate >> order.txt" }
  featurize: { run: "sleep 1; echo featurize >> order.txt" }
  train: { needs: [featurize], run: "sleep 1; echo train >> order.txt" }
`);
    const byKey = new Map(runs.map((run) => [run.key, run.id]));
    const ended = await Promise.all(runs.map((run) => untilState(run.id, ['succeeded', 'failed', 'skipped'], 90_000)));
    assert.deepEqual(ended.map((detail) => detail.state), ['succeeded', 'succeeded', 'succeeded']);
    assert.deepEqual(readFileSync(order, 'utf8').trim().split('\n'), ['featurize', 'train', 'evaluate']);
    const train = await job(byKey.get('train')!);
    const featurize = await job(byKey.get('featurize')!);
    assert.ok(train.startedAt! >= Math.floor(featurize.endedAt! / 1000) * 1000 - 1000, 'train started once featurize had ended');
  });

  it('skips the runs downstream of a failed one, and reports a failing job with its exit code', async () => {
    const runs = await submit(`name: broken
jobs:
  first: { run: "echo failing; exit 3" }
  second: { needs: [first], run: "echo never" }
`);
    const [first, second] = runs.map((run) => run.id) as [number, number];
    const failed = await untilState(first, ['failed']);
    assert.equal(failed.exitCode, 3);
    assert.match(failed.reason ?? '', /exited with code 3/);
    const skipped = await untilState(second, ['skipped', 'failed', 'cancelled']);
    assert.equal(skipped.state, 'skipped', skipped.reason);
    writeFileSync(join(workdir, 'fail.drover.yaml'), 'name: fails\nrun: exit 7\n');
    const cli = await harness.cli(['submit', '--host', 'cluster', '--wait', join(workdir, 'fail.drover.yaml')], workdir);
    assert.equal(cli.code, 7, 'drover submit --wait exits with the run’s own code');
  });

  it('says why a run waits in SLURM, and cancels queued and running runs with scancel', async () => {
    const [running] = await submit('name: holder\nrun: sleep 300\nresources: { cpus: 1 }\n');
    await untilState(running!.id, ['running']);
    const [waiting] = await submit('name: big\nrun: "true"\nresources: { cpus: 8 }\n');
    const pending = await waitFor('a SLURM pending reason', async () => {
      const view = await job(waiting!.id);
      return view.state === 'queued' && /SLURM: .*\((Resources|Priority)\)/.test(view.reason ?? '') ? view : undefined;
    });
    assert.match(pending.reason!, /no free resources|higher priority/);
    const cancelled = await harness.cli(['cancel', String(running!.id), String(waiting!.id)]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    const [first, second] = await Promise.all([untilState(running!.id, ['cancelled']), untilState(waiting!.id, ['cancelled'])]);
    assert.equal(first.attemptList[0]!.outcome, 'cancelled');
    assert.equal(second.attempts, 0, 'the waiting run never started');
    const states = new Map(slurmJobs().map(([id, state]) => [id, state]));
    assert.ok([...states.values()].filter((state) => state === 'CANCELLED').length >= 2, JSON.stringify([...states]));
  });

  it('follows a SLURM run across a daemon restart, with the output written while it was down', async () => {
    const [run] = await submit('name: survivor\nrun: echo before; sleep 4; echo after\n');
    await untilState(run!.id, ['running']);
    const stopped = await harness.cli(['daemon', 'stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const ended = await untilState(run!.id, ['succeeded', 'failed']);
    assert.equal(ended.state, 'succeeded', ended.reason);
    assert.equal(ended.attempts, 1);
    assert.match((await harness.cli(['logs', String(run!.id)])).stdout, /^before\nafter\n$/);
  });

  it('follows a SLURM run an earlier Drover mirrored in its layout (runs/<job>/<attempt>), fetching no output twice', async () => {
    const [run] = await submit('name: older\nrun: echo before; sleep 4; echo after\n');
    const id = run!.id;
    await waitFor('the first line mirrored', async () => /^before\n/.test((await harness.cli(['logs', String(id)])).stdout));
    const stopped = await harness.cli(['daemon', 'stop']);
    assert.equal(stopped.code, 0, stopped.stderr);
    // Where an earlier Drover kept the attempt: a folder per job, holding one per attempt.
    const paths = daemonPaths(harness.home);
    const older = join(paths.runs, String(id), '1');
    mkdirSync(join(paths.runs, String(id)));
    renameSync(join(paths.runs, `${id}-1`), older);
    const db = new Database(paths.database);
    try {
      db.exec('PRAGMA locking_mode = EXCLUSIVE');
      db.run('UPDATE attempts SET dir = ? WHERE job_id = ?', [older, id]);
    } finally {
      db.close();
    }
    const ended = await untilState(id, ['succeeded', 'failed']);
    assert.equal(ended.state, 'succeeded', ended.reason);
    assert.equal(readFileSync(join(older, 'output.log'), 'utf8'), 'before\nafter\n');
    assert.match((await harness.cli(['logs', String(id)])).stdout, /^before\nafter\n$/);
  });

  it('maps a job that reached its SLURM time limit to a timeout', async () => {
    const [run] = await submit('name: slow\nrun: echo started; sleep 600\ntimeout: 1m\n');
    const ended = await untilState(run!.id, ['failed', 'succeeded', 'cancelled'], 170_000);
    assert.equal(ended.state, 'failed');
    assert.equal(ended.attemptList[0]!.outcome, 'timed-out');
    assert.match(ended.reason ?? '', /time limit \(TIMEOUT\)/);
    assert.match((await harness.cli(['logs', String(run!.id)])).stdout, /started[\s\S]*DUE TO TIME LIMIT/);
  });

  it('previews the sbatch script without submitting, and refuses what SLURM cannot be told', async () => {
    const spec = join(workdir, 'preview.drover.yaml');
    writeFileSync(spec, 'name: preview\nrun: python train.py --lr ${{ params.lr }}\nresources: { gpus: 1 }\nslurm: { partition: long }\nsweep:\n  max_parallel: 2\n  parameters:\n    lr: [1, 2, 3]\n');
    const before = slurmJobs().length;
    const preview = await harness.cli(['sbatch', spec], workdir);
    assert.equal(preview.code, 0, preview.stderr);
    assert.match(preview.stdout, /^#SBATCH --array=0-2%2$/m);
    assert.match(preview.stdout, /^#SBATCH --partition=long$/m);
    assert.match(preview.stdout, /command='python train.py --lr 3'/);
    assert.equal((await harness.cli(['run', '--host', 'cluster', '--preview-sbatch', '--gpus', '1', '--', 'nvidia-smi'], workdir)).code, 0);
    assert.equal(slurmJobs().length, before, 'nothing was submitted');
    writeFileSync(spec, 'name: preview\nrun: "true"\nslurm: { partition: "long --account=other" }\n');
    const refused = await harness.cli(['sbatch', spec], workdir);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /partition "long --account=other" is not a name SLURM takes/);
  });

  it('shows the cluster’s partitions, nodes with their GRES, and the user’s jobs in the hosts view', async () => {
    const cluster = await waitFor('the cluster view', async () => (await rpc('drover/hosts', {})).find((host) => host.name === 'cluster' && (host.slurm?.nodes.length ?? 0) > 0));
    assert.equal(cluster.kind, 'slurm');
    assert.deepEqual(cluster.slurm!.partitions.map((partition) => [partition.name, partition.default]), [['debug', true], ['long', false]]);
    assert.equal(cluster.slurm!.nodes[0]!.gres, 'gpu:a100:2');
    assert.ok(cluster.slurm!.jobs.length > 0);
    const listed = await harness.cli(['hosts']);
    assert.match(listed.stdout, /partition debug \(default\)/);
    assert.match(listed.stdout, /gpu:a100:2, used/);
  });

  describe('through an SSH login node', () => {
    let ssh: SshTestbed;
    let remote: DaemonHarness;

    before(async function () {
      skipUnlessAvailable(this, 'the SSH test hosts', SshTestbed.unavailable());
      // h1 is the login node: its own network namespace and user, SLURM's client tools on its
      // PATH with a slurm.conf that reaches the controller across h1's link, and this machine's
      // munge socket (a file, so namespaces share it). Its home stands for the shared filesystem.
      ssh = await SshTestbed.start({ hosts: [{ name: 'h1' }] });
      const conf = testbed.clientConf(ssh.address('h1').replace(/\.2$/, '.1'));
      for (const tool of ['sbatch', 'squeue', 'sinfo', 'scancel', 'sacct', 'scontrol']) {
        const wrapper = join(ssh.hostDir('h1'), 'bin', tool);
        writeFileSync(wrapper, `#!/bin/sh\nSLURM_CONF='${conf}' exec /usr/bin/${tool} "$@"\n`);
        chmodSync(wrapper, 0o755);
      }
      remote = new DaemonHarness({ env: { DROVER_SSH_CONFIG: ssh.sshConfigPath, DROVER_SLURM_POLL_MS: '300', PATH: '/usr/local/bin:/usr/bin:/bin' } });
    });

    after(async () => {
      await remote?.dispose();
      await ssh?.dispose();
    });

    it('submits through the login node, with the workdir synced to the cluster, and follows the run to its end', async () => {
      const added = await remote.cli(['hosts', 'add', 'login', '--slurm', '--via', 'h1']);
      assert.equal(added.code, 0, added.stderr + added.stdout);
      assert.match(added.stdout, /added login: up, SLURM via h1/);
      writeFileSync(join(workdir, 'remote.sh'), 'echo "as $(id -un) on $SLURM_JOB_NODELIST in $PWD"\nexit 5\n');
      const spec = join(workdir, 'remote.drover.yaml');
      writeFileSync(spec, 'name: remote\nrun: sh remote.sh\n');
      const result = await remote.cli(['submit', '--host', 'login', '--wait', '--json', spec], workdir);
      assert.equal(result.code, 5, result.stderr + result.stdout);
      const [final] = JSON.parse(result.stdout) as JobView[];
      assert.equal(final!.state, 'failed');
      const log = (await remote.cli(['logs', String(final!.id)])).stdout;
      assert.match(log, new RegExp(`^as ${ssh.user('h1')} on ${testbed.node} in ${ssh.home('h1')}/\\.drover/slurm/`, 'm'));
      const listed = testbed.command('squeue', ['-h', '-t', 'all', '-u', ssh.user('h1'), '-o', '%j|%T']);
      assert.match(listed, /^remote\.remote\|FAILED$/m);
    });
  });
});
