/**
 * SSH host benchmark, side by side with rsync over the same ssh, as ratios. Run with
 * `npm run bench` (as root: it starts a real sshd test host in a network namespace, see
 * test/support/ssh-testbed.ts; elsewhere it says why it cannot run and exits 0).
 *
 *   - Incremental sync: a 2,000-file tree (1 KiB files) already on the host, one file changed,
 *     synced again. Drover's sync (content hashes, SFTP, one connection kept open, as the daemon
 *     does) against `rsync -a --delete` through an ssh ControlMaster connection opened before the
 *     clock starts, so neither pays for the SSH handshake. Target: within 1.5× of rsync.
 *   - Dispatch latency: submit → the process running on the remote host, workdir already synced,
 *     through a real daemon (`drover/submit` with host h1). The run prints its own start time
 *     (the host shares this machine's clock). Target: under 300 ms.
 *
 * Correctness is checked (the host's tree matches after every sync; every run starts on h1 and
 * succeeds); a failed check exits non-zero. The targets are a report, not a test.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FINAL_STATES, type JobView } from '../common/protocol';
import { SshConnection } from '../runner/src/hosts/ssh/connection';
import { resolveSshHost } from '../runner/src/hosts/ssh/ssh-config';
import { syncWorkdir } from '../runner/src/hosts/ssh/workdir-sync';
import { DaemonHarness } from '../test/support/daemon-harness';
import { SshTestbed } from '../test/support/ssh-testbed';
import { check, latency, ms, table, verdict } from './report';

const FILES = 2_000;
const REPEATS = 7;
const DISPATCHES = 20;

function makeTree(dir: string): void {
  for (let i = 0; i < FILES; i++) {
    const sub = join(dir, `d${i % 40}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.txt`), `${i}\n`.padEnd(1024, 'x'));
  }
}

/** Where the benchmark is, on stderr, so a hang shows where it hangs. */
const step = (what: string) => process.stderr.write(`  ${what}\n`);

const median = (samples: number[]) => latency(samples).p50;

/** The tree's files on the host, hashed there: what a correct sync must have produced. */
async function remoteDigest(testbed: SshTestbed, dir: string): Promise<string> {
  const result = await testbed.exec('h1', `cd '${dir}' && find . -type f ! -name '.drover*' | LC_ALL=C sort | xargs sha256sum | sha256sum`);
  return result.stdout.trim();
}

function localDigest(dir: string): string {
  return spawnSync('sh', ['-c', "find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum"], { cwd: dir, encoding: 'utf8' }).stdout.trim();
}

async function benchSync(testbed: SshTestbed, tree: string): Promise<{ drover: number[]; rsync: number[]; first: { drover: number; rsync: number } }> {
  const connection = new SshConnection(resolveSshHost('h1', { configPath: testbed.sshConfigPath }));
  await connection.connect();
  const home = testbed.home('h1');
  const cache = join(mkdtempSync(join(tmpdir(), 'drover-bench-cache-')), 'cache.json');
  const sync = async () =>
    syncWorkdir({ localDir: tree, remoteRoot: `${home}/.drover/projects/bench`, sftp: await connection.sftp(), exec: (command) => connection.exec(command), cacheFile: cache });
  const control = join(mkdtempSync(join(tmpdir(), 'drover-bench-ssh-')), 'control');
  const ssh = `ssh -F ${testbed.sshConfigPath} -o ControlMaster=auto -o ControlPath=${control} -o ControlPersist=120`;
  const rsync = () => {
    const result = spawnSync('rsync', ['-a', '--delete', '-e', ssh, `${tree}/`, 'h1:rsync-tree/'], { encoding: 'utf8' });
    check(result.status === 0, `rsync failed: ${result.stderr}`);
  };
  try {
    step('sync: ssh master connection for rsync');
    // Opens the master connection rsync will reuse.
    check(spawnSync('sh', ['-c', `${ssh} h1 true`]).status === 0, 'ssh to h1 failed');
    step('sync: first sync of the whole tree');
    let start = performance.now();
    const firstSync = await sync();
    const firstDrover = performance.now() - start;
    check(firstSync.uploadedFiles === FILES, `the first sync sent ${firstSync.uploadedFiles} files, not ${FILES}`);
    start = performance.now();
    rsync();
    const firstRsync = performance.now() - start;
    const drover: number[] = [];
    const rsyncs: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      step(`sync: one changed file, round ${i + 1} of ${REPEATS}`);
      // A new size each time: rsync's quick check (size and mtime) could miss a same-size rewrite
      // within one mtime tick, which would count against nothing.
      writeFileSync(join(tree, 'd0', 'f0.txt'), `changed ${i}\n`.repeat(i + 1));
      // Alternate who goes first, so neither always meets a warm page cache.
      const runDrover = async () => {
        const began = performance.now();
        const result = await sync();
        drover.push(performance.now() - began);
        check(result.uploadedFiles === 1, `an incremental sync sent ${result.uploadedFiles} files, not 1`);
        return result;
      };
      const runRsync = () => {
        const began = performance.now();
        rsync();
        rsyncs.push(performance.now() - began);
      };
      let result;
      if (i % 2 === 0) {
        result = await runDrover();
        runRsync();
      } else {
        runRsync();
        result = await runDrover();
      }
      const expected = localDigest(tree);
      check((await remoteDigest(testbed, result.remoteDir)) === expected, "Drover's copy on the host differs from the tree");
      const rsynced = await remoteDigest(testbed, `${home}/rsync-tree`);
      check(rsynced === expected, `rsync's copy on the host differs from the tree (${rsynced} vs ${expected})`);
    }
    return { drover, rsync: rsyncs, first: { drover: firstDrover, rsync: firstRsync } };
  } finally {
    spawnSync('sh', ['-c', `${ssh} -O exit h1`], { stdio: 'ignore' });
    await connection.close();
  }
}

async function benchDispatch(testbed: SshTestbed, tree: string): Promise<number[]> {
  const harness = new DaemonHarness({ env: { DROVER_SSH_CONFIG: testbed.sshConfigPath } });
  try {
    const added = await harness.cli(['hosts', 'add', 'h1']);
    check(added.code === 0, `drover hosts add h1 failed: ${added.stderr}`);
    const client = await harness.client();
    const spec = 'name: dispatch\nrun: date +%s%3N\n';
    const runOnce = async (): Promise<{ job: JobView; submittedAt: number }> => {
      const submittedAt = Date.now();
      const { jobs } = await client.request('drover/submit', { specText: spec, cwd: tree, host: 'h1' });
      const deadline = Date.now() + 60_000;
      for (;;) {
        const job = await client.request('drover/job', { id: jobs[0]!.id });
        if (FINAL_STATES.includes(job.state)) return { job, submittedAt };
        check(Date.now() < deadline, `run ${job.id} is still ${job.state} after a minute: ${job.reason ?? ''}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    step('dispatch: the first run syncs the tree');
    // The first run syncs the tree; dispatch is measured with it already there.
    const warm = await runOnce();
    check(warm.job.state === 'succeeded', `the warm-up run ${warm.job.state}: ${warm.job.reason ?? ''}`);
    const samples: number[] = [];
    for (let i = 0; i < DISPATCHES; i++) {
      const { job, submittedAt } = await runOnce();
      check(job.state === 'succeeded' && job.host === 'h1', `run ${job.id} ${job.state} on ${job.host ?? '?'}: ${job.reason ?? ''}`);
      const started = Number(readFileSync(join(harness.home, 'runs', String(job.id), '1', 'output.log'), 'utf8').trim());
      check(Number.isFinite(started), `run ${job.id} printed no start time`);
      samples.push(started - submittedAt);
    }
    client.close();
    return samples;
  } finally {
    await harness.dispose();
  }
}

async function main(): Promise<void> {
  console.log(`Drover SSH benchmark: a ${FILES.toLocaleString('en-US')}-file tree on a real sshd host (network namespace), ${new Date().toISOString()}\n`);
  const unavailable = SshTestbed.unavailable();
  if (unavailable) {
    console.log(`skipped: the SSH test host cannot run here (${unavailable})`);
    return;
  }
  const rsyncVersion = spawnSync('rsync', ['--version'], { encoding: 'utf8' });
  if (rsyncVersion.status !== 0) {
    console.log('skipped: rsync is not installed (apt-get install rsync)');
    return;
  }
  step('starting the SSH test host');
  const testbed = await SshTestbed.start({ hosts: [{ name: 'h1' }] });
  const tree = mkdtempSync(join(tmpdir(), 'drover-bench-tree-'));
  try {
    makeTree(tree);
    const sync = await benchSync(testbed, tree);
    const dispatch = latency(await benchDispatch(testbed, tree));
    const drover = median(sync.drover);
    const rsync = median(sync.rsync);
    console.log(
      table(
        ['measure', 'Drover', 'rsync', 'ratio', 'target', 'verdict'],
        [
          ['first sync, 2,000 files (ms)', ms(sync.first.drover), ms(sync.first.rsync), (sync.first.drover / sync.first.rsync).toFixed(2), '-', '-'],
          [`sync, 1 file changed (ms, median of ${REPEATS})`, ms(drover), ms(rsync), (drover / rsync).toFixed(2), '≤ 1.5', verdict(drover <= 1.5 * rsync)],
          [`dispatch p50 (ms, ${dispatch.n} runs)`, ms(dispatch.p50), '-', '-', '< 300', verdict(dispatch.p50 < 300)],
          [`dispatch p99 (ms)`, ms(dispatch.p99), '-', '-', '-', '-'],
        ],
      ),
    );
  } finally {
    rmSync(tree, { recursive: true, force: true });
    await testbed.dispose();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
