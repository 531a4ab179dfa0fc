import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeSpec, expandSpec, type RunPlan } from '../../../common/spec';
import { sbatchScript, SbatchError, slurmTime, taskDirs, type SbatchJob } from '../../../runner/src/hosts/slurm/sbatch-script';

function plans(spec: string): RunPlan[] {
  const analysis = analyzeSpec(spec, 'test.drover.yaml');
  assert.ok(analysis.model, 'the spec parses');
  return expandSpec(analysis.model);
}

function job(runs: RunPlan[], extra: Partial<SbatchJob> = {}): SbatchJob {
  return {
    name: 'spec.train',
    runs: runs.map((plan, index) => ({ runId: 100 + index, plan, command: plan.command ?? 'true' })),
    workdir: '/home/alice/project',
    outputDir: '/scratch/alice/.drover/slurm/abc/7-train',
    dependsOn: [],
    ...extra,
  };
}

function directives(script: string): string[] {
  return script.split('\n').filter((line) => line.startsWith('#SBATCH '));
}

describe('the sbatch compiler', () => {
  it('asks SLURM for the resources, time and slurm settings of the spec', () => {
    const [plan] = plans(`name: train
run: python train.py
resources: { gpus: "A100:2", cpus: 4, memory: 16GB }
timeout: 90m
slurm: { partition: gpu, qos: normal, account: ml-team }
`);
    const script = sbatchScript(job([plan!]));
    assert.deepEqual(directives(script), [
      '#SBATCH --job-name=spec.train',
      '#SBATCH --output=/scratch/alice/.drover/slurm/abc/7-train/0/output.log',
      '#SBATCH --open-mode=append',
      '#SBATCH --ntasks=1',
      '#SBATCH --cpus-per-task=4',
      '#SBATCH --mem=15259M',
      '#SBATCH --gres=gpu:a100:2',
      '#SBATCH --time=1:30:00',
      '#SBATCH --partition=gpu',
      '#SBATCH --qos=normal',
      '#SBATCH --account=ml-team',
    ]);
    assert.ok(script.startsWith('#!/bin/sh\n'));
    assert.match(script, /^command='python train.py'$/m);
  });

  it('makes a sweep one job array, capped at max_parallel, one case per point', () => {
    const sweep = plans(`name: sweep
run: python train.py --lr \${{ params.lr }}
resources: { gpus: 1 }
sweep:
  max_parallel: 2
  parameters:
    lr: [0.1, 0.01, 0.001, 1, 2, 3]
`);
    assert.equal(sweep.length, 6);
    const script = sbatchScript(job(sweep));
    assert.ok(directives(script).includes('#SBATCH --array=0-5%2'));
    assert.ok(directives(script).includes('#SBATCH --output=/scratch/alice/.drover/slurm/abc/7-train/%a/output.log'));
    assert.ok(directives(script).includes('#SBATCH --gres=gpu:1'));
    for (let index = 0; index < 6; index++) assert.match(script, new RegExp(`^ {2}${index}\\)\\n {4}export DROVER_RUN_ID=${100 + index}$`, 'm'));
    assert.match(script, /^ {4}command='python train.py --lr 0.001'$/m);
    assert.deepEqual(taskDirs(job(sweep)).at(-1), '/scratch/alice/.drover/slurm/abc/7-train/5');
  });

  it('turns needs into afterok dependencies that end the job when an upstream run fails', () => {
    const [plan] = plans('name: evaluate\nrun: python eval.py\n');
    const script = sbatchScript(job([plan!], { dependsOn: ['41', '42'] }));
    assert.ok(directives(script).includes('#SBATCH --dependency=afterok:41:42'));
    assert.ok(directives(script).includes('#SBATCH --kill-on-invalid-dep=yes'));
  });

  it('rounds timeouts up to SLURM minutes', () => {
    assert.equal(slurmTime(1), '0:01:00');
    assert.equal(slurmTime(60), '0:01:00');
    assert.equal(slurmTime(61), '0:02:00');
    assert.equal(slurmTime(2 * 3600), '2:00:00');
    assert.equal(slurmTime(50 * 3600), '2-02:00:00');
  });

  it('refuses names SLURM would misread in an #SBATCH line, naming them', () => {
    const [plan] = plans('name: x\nrun: "true"\nslurm: { partition: "gpu --account=someone-else" }\n');
    assert.throws(() => sbatchScript(job([plan!])), (error: unknown) => error instanceof SbatchError && /partition "gpu --account=someone-else"/.test(error.message));
    const [plain] = plans('name: x\nrun: "true"\n');
    assert.throws(() => sbatchScript(job([plain!], { outputDir: '/tmp/with space' })), /output folder/);
  });

  it('keeps commands, environment and the workdir data when a shell runs the script', () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-sbatch-'));
    try {
      const marker = join(dir, 'pwned');
      const [plan] = plans(`name: x
run: printf '%s|%s' "$EVIL" "$DROVER_RUN_ID" > out.txt
env: { EVIL: "$(touch ${marker}) \`touch ${marker}\` 'q'" }
setup: echo set >> setup.txt
`);
      const workdir = join(dir, "it's here");
      spawnSync('mkdir', ['-p', workdir]);
      const script = sbatchScript(job([plan!], { workdir, outputDir: join(dir, 'out'), setup: plan!.setup! }));
      for (let run = 0; run < 2; run++) {
        const result = spawnSync('sh', ['-s'], { input: script, encoding: 'utf8' });
        assert.equal(result.status, 0, result.stderr);
      }
      assert.equal(readFileSync(join(workdir, 'out.txt'), 'utf8'), `$(touch ${marker}) \`touch ${marker}\` 'q'|100`);
      assert.equal(readFileSync(join(workdir, 'setup.txt'), 'utf8'), 'set\n', 'setup ran once for the two runs');
      assert.equal(existsSync(marker), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
