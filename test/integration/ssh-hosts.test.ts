import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DaemonRequests, JobView } from '../../common/protocol';
import { DaemonHarness, waitFor } from '../support/daemon-harness';
import { SshTestbed } from '../support/ssh-testbed';
import { skipUnlessAvailable } from '../support/machine-lock';

/**
 * The daemon with SSH hosts, end to end: real sshd hosts in network namespaces (see
 * ssh-testbed.ts), reached through the ssh config a user would write, driven through the CLI
 * and the protocol as the extension does.
 */
describe('SSH hosts', function () {
  this.timeout(90_000);
  let testbed: SshTestbed;
  let harness: DaemonHarness;
  let workdir: string;

  before(async function () {
    skipUnlessAvailable(this, 'the SSH test hosts', SshTestbed.unavailable());
    testbed = await SshTestbed.start();
  });

  after(async () => testbed?.dispose());

  beforeEach(() => {
    harness = new DaemonHarness({ env: { DROVER_SSH_CONFIG: testbed.sshConfigPath, DROVER_HOST_PROBE_MS: '1000' } });
    workdir = mkdtempSync(join(tmpdir(), 'drover-ssh-work-'));
    writeFileSync(join(workdir, 'train.sh'), 'echo "trained on $(hostname) with GPUs $CUDA_VISIBLE_DEVICES"\necho "::metric step=1 loss=0.5"\n');
  });

  afterEach(async () => {
    await harness?.dispose();
    rmSync(workdir, { recursive: true, force: true });
  });

  const rpc = <M extends keyof DaemonRequests>(method: M, params: DaemonRequests[M]['params']) => harness.request(method, params);

  const hosts = () => rpc('drover/hosts', {});
  const job = (id: number) => rpc('drover/job', { id });
  const submit = async (specText: string, host?: string) => (await rpc('drover/submit', { specText, cwd: workdir, ...(host !== undefined && { host }) })).jobs;
  const untilState = (id: number, states: JobView['state'][], timeoutMs = 30_000) =>
    waitFor(`run ${id} to be ${states.join(' or ')}`, async () => {
      const detail = await job(id);
      return states.includes(detail.state) ? detail : undefined;
    }, timeoutMs);
  const log = async (id: number) => (await harness.cli(['logs', String(id)])).stdout;

  async function addHosts(...aliases: string[]): Promise<void> {
    for (const alias of aliases) {
      const added = await harness.cli(['hosts', 'add', alias]);
      assert.equal(added.code, 0, `${added.stdout}${added.stderr}`);
    }
  }

  it('adds hosts from the ssh config, through ProxyJump too, and shows their GPUs and who holds them', async () => {
    assert.deepEqual((await rpc('drover/hosts/aliases', {})).aliases, ['h1', 'h2', 'h3']);
    await addHosts('h1', 'h2', 'h3');
    const view = await waitFor('every host probed', async () => {
      const all = await hosts();
      return ['h1', 'h2', 'h3'].every((name) => all.find((host) => host.name === name)?.state === 'up') ? all : undefined;
    });
    const byName = new Map(view.map((host) => [host.name, host]));
    assert.equal(byName.get('h1')!.kind, 'ssh');
    assert.deepEqual(byName.get('h1')!.gpus.map((gpu) => [gpu.name, gpu.foreignPids]), [['NVIDIA A100-SXM4-40GB', []], ['NVIDIA A100-SXM4-40GB', []]]);
    assert.deepEqual(byName.get('h2')!.gpus.map((gpu) => gpu.foreignPids), [[4242], []]);
    assert.deepEqual(byName.get('h3')!.gpus.map((gpu) => gpu.name), ['NVIDIA GeForce RTX 4090', 'NVIDIA GeForce RTX 4090']);
    assert.match(byName.get('h1')!.os, /^Linux /);
    const listing = await harness.cli(['hosts']);
    assert.match(listing.stdout, /h2 +up, 2 GPUs/);
    assert.match(listing.stdout, /busy: pid 4242 \(not Drover's\)/);
    const unknown = await harness.cli(['hosts', 'add', 'nowhere']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /nowhere is not a Host in your SSH config \(it has h1, h2, h3\)/);
  });

  it('spreads a sweep over two hosts with the right CUDA_VISIBLE_DEVICES, and records remote metrics', async () => {
    await addHosts('h1', 'h2');
    const runs = await submit('name: spread\nrun: sh train.sh # ${{ params.i }}\nresources: { gpus: 1 }\nplacement: { hosts: [h1, h2] }\nsweep: { parameters: { i: [1, 2, 3] } }\n');
    const ended = await Promise.all(runs.map((run) => untilState(run.id, ['succeeded', 'failed'])));
    const placed = ended.map((run) => `${run.host}:${run.gpus!.join(',')}`).sort();
    // h1's two GPUs, and on h2 only GPU 1: another user holds GPU 0 there.
    assert.deepEqual(placed, ['h1:0', 'h1:1', 'h2:1']);
    for (const run of ended) {
      assert.equal(run.state, 'succeeded', run.reason);
      assert.equal(await log(run.id), `trained on ${run.host} with GPUs ${run.gpus!.join(',')}\n::metric step=1 loss=0.5\n`);
      const metrics = await rpc('drover/metrics', { id: run.id });
      assert.deepEqual(metrics.map((series) => [series.name, series.points.map((point) => point.value)]), [['loss', [0.5]]]);
    }
  });

  it('runs the setup once per host and workdir version, and records the version each run ran in', async () => {
    await addHosts('h1');
    const spec = 'name: setup\nsetup: echo "set up $(cat data.txt)" >> ~/setups.log\nrun: cat data.txt # ${{ params.i }}\nplacement: { hosts: [h1] }\nsweep: { parameters: { i: [1, 2] } }\n';
    writeFileSync(join(workdir, 'data.txt'), 'v1');
    const first = await submit(spec);
    const firstEnded = await Promise.all(first.map((run) => untilState(run.id, ['succeeded', 'failed'])));
    const again = await submit(spec);
    const againEnded = await Promise.all(again.map((run) => untilState(run.id, ['succeeded', 'failed'])));
    writeFileSync(join(workdir, 'data.txt'), 'v2');
    const changed = await submit(spec);
    const changedEnded = await Promise.all(changed.map((run) => untilState(run.id, ['succeeded', 'failed'])));
    for (const run of [...firstEnded, ...againEnded, ...changedEnded]) assert.equal(run.state, 'succeeded', run.reason);
    assert.equal((await testbed.exec('h1', 'cat ~/setups.log')).stdout, 'set up v1\nset up v2\n');
    const versions = (runs: typeof firstEnded) => new Set(runs.map((run) => run.attemptList[0]!.workdirVersion));
    assert.equal(versions([...firstEnded, ...againEnded]).size, 1);
    assert.equal(versions(changedEnded).size, 1);
    assert.notDeepEqual(versions(firstEnded), versions(changedEnded));
    assert.match([...versions(changedEnded)][0]!, /^[0-9a-f]{64}$/);
    assert.equal(await log(changed[0]!.id), 'v2');
    assert.match((await harness.cli(['show', String(changed[0]!.id)])).stdout, /succeeded, exit 0, .* on h1 \(workdir [0-9a-f]{12}\)/);
  });

  it('keeps a run going on its host through a cut link, and collects its whole log and exit code after', async () => {
    await addHosts('h1');
    const [run] = await submit('name: cut\nrun: "echo before; sleep 3; echo after; exit 3"\n', 'h1');
    await waitFor('the run to start on h1', async () => (await log(run!.id)).includes('before'));
    testbed.cutLink('h1');
    await waitFor('the daemon to see h1 unreachable', async () => (await hosts()).find((host) => host.name === 'h1')?.state === 'unreachable', 20_000);
    // It ends on the host while the link is down.
    await new Promise((resolve) => setTimeout(resolve, 3500));
    assert.equal((await job(run!.id)).state, 'running', 'no verdict while the host cannot be asked');
    testbed.restoreLink('h1');
    const ended = await untilState(run!.id, ['failed', 'succeeded'], 30_000);
    assert.equal(ended.exitCode, 3);
    assert.equal(ended.reason, 'exited with code 3');
    assert.equal(await log(run!.id), 'before\nafter\n');
  });

  it('re-attaches to a remote run after the daemon is killed with -9', async () => {
    await addHosts('h2');
    const [run] = await submit('name: survivor\nrun: "echo one; sleep 2; echo two"\n', 'h2');
    await waitFor('the run to start on h2', async () => (await log(run!.id)).includes('one'));
    const client = await harness.client();
    const daemonPid = client.daemon.pid;
    client.close();
    process.kill(daemonPid, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 2500));
    // The next request starts a new daemon, which finds the run on h2 again.
    const ended = await untilState(run!.id, ['succeeded', 'failed'], 30_000);
    assert.equal(ended.state, 'succeeded', ended.reason);
    assert.equal(await log(run!.id), 'one\ntwo\n');
    assert.equal(ended.attemptList.length, 1, 'it ran once');
  });

  it('cancels a remote run: its whole process group on the host ends', async () => {
    await addHosts('h1');
    const [run] = await submit('name: long\nrun: "echo started; sleep 60 & sleep 60; wait"\n', 'h1');
    await waitFor('the run to start on h1', async () => (await log(run!.id)).includes('started'));
    await harness.cli(['cancel', String(run!.id)]);
    const ended = await untilState(run!.id, ['cancelled']);
    assert.equal(ended.attemptList[0]!.outcome, 'cancelled');
    await waitFor('no sleep left on h1', async () => (await testbed.exec('h1', 'pgrep -u "$(id -u)" -x sleep || true')).stdout.trim() === '');
  });

  it('passes hostile commands, parameters and paths to the remote shell as data', async () => {
    await addHosts('h1');
    const marker = `${testbed.home('h1')}/pwned`;
    const hostile = [`$(touch ${marker})`, `\`touch ${marker}\``, `a'b"c`, `; touch ${marker}`, 'two\nlines', '  spaced  '];
    const odd = join(workdir, `dir with 'quotes' and $(touch ${marker.replace(/\//g, '_')})`);
    mkdirSync(odd);
    const cli = await harness.cli(['run', '--wait', '--host', 'h1', '--', 'printf', '%s|', ...hostile], odd);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, hostile.map((word) => `${word}|`).join(''));
    const [run] = await submit(`name: params\nrun: printf '%s' \${{ params.x }}\nparams: { x: ${JSON.stringify(hostile[0])} }\nenv: { EVIL: ${JSON.stringify(hostile[2])} }\n`, 'h1');
    const ended = await untilState(run!.id, ['succeeded', 'failed']);
    assert.equal(ended.state, 'succeeded', ended.reason);
    assert.equal(ended.record.targetHost, 'h1', 'the record keeps --host, so a rerun goes there too');
    assert.equal(await log(run!.id), hostile[0]);
    const check = await testbed.exec('h1', `ls ${marker} 2>&1; ls ~ | grep -c pwned || true`);
    assert.match(check.stdout, /No such file/);
    assert.equal(check.stdout.trim().split('\n').pop(), '0', 'nothing was executed');
  });

  it('refuses a host whose key changed, loudly, with the fingerprint', async () => {
    await testbed.rotateHostKey('h1');
    const added = await harness.cli(['hosts', 'add', 'h1']);
    assert.notEqual(added.code, 0);
    assert.match(added.stdout + added.stderr, /unreachable \(.*host key.*changed.*SHA256:[A-Za-z0-9+/]{43}/is);
    const [view] = (await hosts()).filter((host) => host.name === 'h1');
    assert.equal(view!.state, 'unreachable');
    const [run] = await submit('name: waits\nrun: "true"\n', 'h1');
    const waiting = await waitFor('a reason to wait', async () => (await job(run!.id)).reason);
    assert.match(waiting, /h1 is unreachable: .*host key/i);
    // A job that also accepts this machine goes there instead.
    const [moved] = await submit('name: moves\nrun: "true"\nplacement: { hosts: [h1, local] }\n');
    assert.equal((await untilState(moved!.id, ['succeeded'])).host, 'local');
  });
});
