/**
 * SLURM benchmark: submit → running through Drover's SLURM path, side by side with a bare
 * `sbatch` in the same run, on the same single-node cluster (test/support/slurm-testbed.ts; as
 * root, elsewhere it says why it cannot run and exits 0). Run with `npm run bench`.
 *
 *   - bare sbatch: `sbatch --parsable` of a script whose command writes its own start time
 *     (`date +%s%N`); latency = that time − the moment before sbatch was spawned.
 *   - Drover: `drover/submit` of a one-job spec with `--host` the cluster (a real daemon), whose
 *     command writes its start time the same way; latency = that time − the moment before the
 *     request was sent. It includes everything Drover adds: the request, the durable commit,
 *     the hand-off script (task folders, the script kept beside the output, sbatch).
 *   - Drover, running seen by the client: the `running` event, which also waits for the next
 *     state poll (DROVER_SLURM_POLL_MS, given below).
 *
 * Samples alternate bare and Drover, one job at a time on an idle cluster, after a warm-up
 * (SLURM's first job after a start waits for its first scheduling pass). Correctness is checked:
 * every job must end COMPLETED / succeeded. Target: Drover's p50 within 10% of bare sbatch.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { JobView } from '../common/protocol';
import { DaemonHarness } from '../test/support/daemon-harness';
import { SlurmTestbed } from '../test/support/slurm-testbed';
import { check, latency, ms, table, verdict } from './report';

const SAMPLES = 16;
const POLL_MS = Number(process.env['DROVER_BENCH_SLURM_POLL_MS'] ?? 2000);

const step = (what: string) => process.stderr.write(`  ${what}\n`);

/** Now on the clock `date +%s%N` uses, in ms. */
const wallNow = () => performance.timeOrigin + performance.now();

async function waitForFile(file: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8').trim();
      if (text) return Number(text) / 1e6;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no start time in ${file} after ${timeoutMs} ms`);
}

async function waitUntilIdle(testbed: SlurmTestbed): Promise<void> {
  for (;;) {
    const live = testbed.command('squeue', ['-h', '-t', 'PD,R,CG,CF', '-o', '%i']).trim();
    if (!live) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function main(): Promise<void> {
  const reason = SlurmTestbed.unavailable();
  if (reason) {
    console.log(`skipped: the SLURM test cluster cannot run here: ${reason}`);
    return;
  }
  step('starting the SLURM test cluster');
  const testbed = await SlurmTestbed.start();
  const dir = mkdtempSync(join(tmpdir(), 'drover-slurm-bench-'));
  const harness = new DaemonHarness({ env: { SLURM_CONF: testbed.confPath, PATH: testbed.env['PATH'], DROVER_SLURM_POLL_MS: String(POLL_MS) } });
  try {
    const added = await harness.cli(['hosts', 'add', 'bench', '--slurm']);
    check(added.code === 0, `drover hosts add failed: ${added.stderr}`);
    const client = await harness.client();
    const running = new Map<number, number>();
    client.on('drover/event/job', (job: JobView) => {
      if (job.state === 'running' && !running.has(job.id)) running.set(job.id, wallNow());
    });
    await client.request('drover/subscribe', { topics: ['jobs'] });

    const bare = async (index: number): Promise<number> => {
      const file = join(dir, `bare-${index}`);
      const script = join(dir, `bare-${index}.sh`);
      writeFileSync(script, `#!/bin/sh\n#SBATCH --output=${dir}/bare-${index}.log\ndate +%s%N > ${file}\nsleep 1\n`);
      const sent = wallNow();
      const result = spawnSync('sbatch', ['--parsable', script], { env: testbed.env, encoding: 'utf8' });
      check(result.status === 0, `sbatch failed: ${result.stderr}`);
      const started = await waitForFile(file);
      await waitUntilIdle(testbed);
      const state = testbed.command('squeue', ['-h', '-t', 'all', '-j', result.stdout.trim(), '-o', '%T']).trim();
      check(state === 'COMPLETED', `bare job ${result.stdout.trim()} ended ${state}`);
      return started - sent;
    };
    const drover = async (index: number): Promise<{ started: number; seen: number | undefined }> => {
      const file = join(dir, `drover-${index}`);
      const sent = wallNow();
      const { jobs } = await client.request('drover/submit', { specText: `name: b${index}\nrun: date +%s%N > ${file}; sleep 1\n`, cwd: dir, host: 'bench' });
      const id = jobs[0]!.id;
      const started = await waitForFile(file);
      for (;;) {
        const job = await client.request('drover/job', { id });
        if (job.state === 'succeeded') break;
        check(job.state === 'queued' || job.state === 'running', `Drover run ${id} ended ${job.state}: ${job.reason ?? ''}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await waitUntilIdle(testbed);
      // A run that ends between two polls is never seen running (its end is).
      return { started: started - sent, seen: running.has(id) ? running.get(id)! - sent : undefined };
    };

    step('warming up (SLURM\'s first scheduling pass, the daemon\'s first hand-off)');
    await bare(-1);
    await drover(-1);
    const bareSamples: number[] = [];
    const droverSamples: number[] = [];
    const seenSamples: number[] = [];
    // SLURM starts jobs on a cycle of its own: a random pause before each submission spreads both
    // contenders over its phase, instead of letting the order of the loop favour one.
    let seed = 12345;
    const pause = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return new Promise((resolve) => setTimeout(resolve, (seed / 2 ** 31) * 1000));
    };
    for (let index = 0; index < SAMPLES; index++) {
      step(`sample ${index + 1}/${SAMPLES}`);
      await pause();
      bareSamples.push(await bare(index));
      await pause();
      const sample = await drover(index);
      droverSamples.push(sample.started);
      if (sample.seen !== undefined) seenSamples.push(sample.seen);
    }
    client.close();
    const b = latency(bareSamples);
    const d = latency(droverSamples);
    const seen = latency(seenSamples);
    console.log(
      table(
        ['submit → running (ms)', 'Drover', 'bare sbatch', 'ratio', 'target', 'verdict'],
        [
          [`p50, job's own start (${SAMPLES} each)`, ms(d.p50), ms(b.p50), (d.p50 / b.p50).toFixed(3), '≤ 1.10', verdict(d.p50 <= 1.1 * b.p50)],
          ['p99', ms(d.p99), ms(b.p99), (d.p99 / b.p99).toFixed(3), '-', '-'],
          [`overhead p50 (Drover − bare)`, ms(d.p50 - b.p50), '-', '-', '-', '-'],
          [`p50, client sees running (poll ${POLL_MS} ms, ${seen.n} seen)`, seen.n ? ms(seen.p50) : '-', '-', '-', '-', '-'],
        ],
      ),
    );
  } finally {
    await harness.dispose();
    await testbed.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
