import assert from 'node:assert/strict';
import { analyzeSpec } from '../../../common/spec';
import { lines } from '../../support/marked';
import { expectClean, expectDiagnostics } from '../../support/spec-assertions';

const SWEEP_SPEC = lines(
  '# train.drover.yaml — one job, swept',
  'name: resnet-sweep',
  'run: python train.py --lr ${{ params.lr }} --seed ${{ params.seed }}',
  'setup: pip install -r requirements.txt      # once per host and workdir version',
  'workdir: .',
  'resources: { gpus: 1, cpus: 4, memory: 16GB }',
  'placement: { hosts: [gpu-box-1, local] }',
  'env: { WANDB_MODE: offline }',
  'retries: 2',
  'timeout: 2h',
  'sweep:',
  '  method: grid',
  '  max_parallel: 4',
  '  parameters:',
  '    lr: [1.0e-3, 3.0e-4]',
  '    seed: { range: [0, 3] }',
);

const WORKFLOW_SPEC = lines(
  'name: nightly',
  'schedule: "0 2 * * *"',
  'jobs:',
  '  featurize: { run: python featurize.py, resources: { cpus: 8, memory: 32GB } }',
  '  train:     { needs: [featurize], run: python train.py, resources: { gpus: 2 } }',
  '  evaluate:  { needs: [train], notebook: eval.ipynb, params: { split: test } }',
);

describe('spec validation', () => {
  describe('the design examples', () => {
    it('accepts the swept job and reads it into the model', () => {
      const { model } = expectClean(SWEEP_SPEC);
      assert.equal(model!.kind, 'job');
      const job = model!.jobs[0]!;
      assert.equal(job.id, 'resnet-sweep');
      assert.deepEqual(job.resources, { gpus: { count: 1 }, cpus: 4, memoryBytes: 16e9 });
      assert.equal(job.timeoutSeconds, 7200);
      assert.deepEqual(job.hosts!.map((host) => host.value), ['gpu-box-1', 'local']);
      assert.deepEqual(job.sweep!.parameters.map((parameter) => parameter.name), ['lr', 'seed']);
    });

    it('accepts the workflow and keeps its edges with their ranges', () => {
      const { model, source } = expectClean(WORKFLOW_SPEC);
      assert.equal(model!.kind, 'workflow');
      assert.deepEqual(model!.jobs.map((job) => job.id), ['featurize', 'train', 'evaluate']);
      const need = model!.jobs[1]!.needs[0]!;
      assert.equal(source.text.slice(need.range.start, need.range.end), 'featurize');
      assert.equal(model!.schedule!.value, '0 2 * * *');
    });

    it('names a job spec after its file when it has no name', () => {
      const { model } = expectClean('run: python train.py\n', 'dir/train.drover.yml');
      assert.equal(model!.name, 'train');
    });
  });

  describe('schema rules', () => {
    it('flags an unknown key at the key, with a did-you-mean', () => {
      expectDiagnostics(lines('name: x', 'run: echo', '⟪resurces⟫: { gpus: 1 }'), [
        { code: 'unknown-key', message: ["unknown key 'resurces'", "did you mean 'resources'?"], suggestion: 'resources' },
      ]);
    });

    it('flags unknown keys nested in blocks and inside workflow jobs', () => {
      expectDiagnostics(lines('jobs:', '  a:', '    run: echo', '    resources: { ⟪gpu⟫: 1 }', '    ⟪retry⟫: 2'), [
        { code: 'unknown-key', message: ["'jobs.a.resources'", "did you mean 'gpus'?"] },
        { code: 'unknown-key', message: ["did you mean 'retries'?"] },
      ]);
    });

    it('flags a value of the wrong type at the value', () => {
      expectDiagnostics(lines('run: echo', 'retries: ⟪many⟫', 'env: ⟪[A, B]⟫'), [
        { code: 'wrong-type', message: ["'retries' is a string; expected a whole number"] },
        { code: 'wrong-type', message: ["'env' is a list; expected a mapping"] },
      ]);
    });

    it('points at the key when a value is missing', () => {
      expectDiagnostics(lines('run: echo', '⟪timeout⟫:'), [{ code: 'wrong-type', message: ["'timeout' has no value"] }]);
    });

    it('checks enums with a suggestion, and bounds', () => {
      expectDiagnostics(
        lines('run: echo ${{ params.a }}', 'retries: ⟪-1⟫', 'priority: ⟪1000⟫', 'sweep:', '  method: ⟪gird⟫', '  parameters: { a: [1] }'),
        [
          { code: 'invalid-value', message: ["'retries' must be at least 0, not -1"] },
          { code: 'invalid-value', message: ["'priority' must be at most 100"] },
          { code: 'invalid-value', message: ['must be one of grid, random', "did you mean 'grid'?"], suggestion: 'grid' },
        ],
      );
    });

    it('reports a required key missing from its block at the block key', () => {
      expectDiagnostics(lines('run: echo', '⟪sweep⟫:', '  method: grid'), [{ code: 'missing-key', message: ["'sweep' needs 'parameters'"] }]);
    });

    it('reports a duplicate key at the second one, naming the line of the first', () => {
      expectDiagnostics(lines('name: a', 'run: echo 1', 'retries: 1', '⟪run⟫: echo 2'), [
        { code: 'duplicate-key', message: ["duplicate key 'run'", 'the first is on line 2'] },
      ]);
    });

    it('reports duplicate job names', () => {
      expectDiagnostics(lines('jobs:', '  a: { run: echo }', '  ⟪a⟫: { run: echo again }'), [{ code: 'duplicate-key', message: ["duplicate key 'a' in 'jobs'"] }]);
    });

    it('checks job and environment variable names', () => {
      expectDiagnostics(lines('jobs:', '  ⟪9lives⟫: { run: echo }', 'env: { ⟪BAD-NAME⟫: 1 }'), [
        { code: 'invalid-value', message: ['a job name starts with a letter'] },
        { code: 'invalid-value', message: ['an environment variable name'] },
      ]);
    });
  });

  describe('sizes, durations, GPUs and schedules', () => {
    it('accepts every documented form', () => {
      expectClean(
        lines(
          'jobs:',
          '  a: { run: echo, resources: { gpus: 2, memory: 512MiB }, timeout: 90s }',
          '  b: { run: echo, resources: { gpus: "A100:2", cpus: 0.5 }, timeout: 1h30m }',
          '  c: { run: echo, resources: { gpus: { count: 2, type: H100, memory: 80GB } }, timeout: 3600 }',
          '  d: { run: echo, resources: { gpus: A100 } }',
          'schedule: "*/30 * * * *"',
        ),
      );
    });

    it('explains what is wrong with each', () => {
      expectDiagnostics(
        lines(
          'run: echo',
          'resources: { gpus: ⟪"A100:x"⟫, memory: ⟪16⟫, cpus: ⟪0⟫ }',
          'timeout: ⟪2 hours⟫',
          'schedule: ⟪"61 * * * *"⟫',
        ),
        [
          { code: 'invalid-value', message: ["'resources.gpus'", 'not a GPU request'] },
          { code: 'wrong-type', message: ["'resources.memory' is a whole number; expected a string"] },
          { code: 'invalid-value', message: ["'resources.cpus' must be greater than 0"] },
          { code: 'invalid-value', message: ["'timeout'", 'not a duration'] },
          { code: 'invalid-value', message: ['invalid cron expression', 'minute'] },
        ],
      );
    });

    it('asks for a unit on a bare size string', () => {
      expectDiagnostics(lines('run: echo', 'resources: { memory: ⟪"16"⟫, gpus: { count: 1, memory: ⟪40Q⟫ } }'), [
        { code: 'invalid-value', message: ['a size needs a unit: write 16GB or 16GiB'] },
        { code: 'invalid-value', message: ["unknown size unit 'Q'"] },
      ]);
    });
  });

  describe('jobs and their dependencies', () => {
    it('requires something to run, and only one thing', () => {
      expectDiagnostics(lines('jobs:', '  ⟪a⟫: { retries: 1 }', '  b: { run: echo, notebook: ⟪x.ipynb⟫ }', '  c: { notebook: ⟪x.py⟫ }'), [
        { code: 'nothing-to-run', message: ["job 'a' has nothing to run"] },
        { code: 'misplaced-key', message: ['both `run` and `notebook`'] },
        { code: 'invalid-value', severity: 'warning', message: ['does not look like a notebook'] },
      ]);
    });

    it('flags needs that name no job, with a did-you-mean', () => {
      expectDiagnostics(lines('jobs:', '  train: { run: echo }', '  eval: { run: echo, needs: [⟪trian⟫] }'), [
        { code: 'unknown-job', message: ["job 'eval' needs 'trian'", "did you mean 'train'?"], suggestion: 'train' },
      ]);
    });

    it('names the whole dependency cycle once, with each edge', () => {
      const analysis = expectDiagnostics(
        lines('jobs:', '  a: { run: echo, needs: [c] }', '  b: { run: echo, needs: [⟪a⟫] }', '  c: { run: echo, needs: [b] }', '  d: { run: echo, needs: [⟪d⟫] }'),
        [
          { code: 'dependency-cycle', message: ['dependency cycle: a → b → c → a'] },
          { code: 'dependency-cycle', message: ["job 'd' needs itself"] },
        ],
      );
      assert.deepEqual(analysis.diagnostics[0]!.related!.map((edge) => edge.message).sort(), ["'a' needs 'c'", "'b' needs 'a'", "'c' needs 'b'"]);
    });

    it('keeps needs and schedules where they mean something', () => {
      expectDiagnostics(lines('run: echo', 'needs: [⟪x⟫]'), [{ code: 'misplaced-key', message: ['a single-job spec has nothing to need'] }]);
      expectDiagnostics(lines('jobs:', '  a: { run: echo, schedule: ⟪"0 2 * * *"⟫ }'), [{ code: 'misplaced-key', message: ['move `schedule` to the top'] }]);
    });
  });

  describe('expressions', () => {
    it('accepts params from params, sweeps and the workflow, and outputs of upstream jobs', () => {
      expectClean(
        lines(
          'params: { epochs: 3 }',
          'jobs:',
          '  prep: { run: "prep --epochs ${{ params.epochs }}", outputs: { data: "path of the data" } }',
          '  train:',
          '    needs: [prep]',
          '    run: train --data ${{ jobs.prep.outputs.data }} --lr ${{params.lr}}',
          '    sweep: { parameters: { lr: [0.1, 0.01] } }',
          '  report: { needs: [train], run: "report ${{ jobs.prep.outputs.data }}" }',
        ),
      );
    });

    it('flags a parameter that does not exist, with a did-you-mean', () => {
      expectDiagnostics(lines('run: python t.py --lr ${{ ⟪params.lrr⟫ }}', 'params: { lr: 0.1 }'), [
        { code: 'unknown-reference', message: ["no parameter 'lrr'", "did you mean 'lr'?", '(it has lr)'], suggestion: 'params.lr' },
      ]);
    });

    it('flags outputs of jobs that are unknown, not upstream, or not declared', () => {
      expectDiagnostics(
        lines(
          'jobs:',
          '  a: { run: echo, outputs: { path: p } }',
          '  b: { run: "x ${{ ⟪jobs.a.outputs.path⟫ }}" }',
          '  c: { needs: [a], run: "x ${{ ⟪jobs.a.outputs.pth⟫ }} ${{ ⟪jobs.z.outputs.path⟫ }} ${{ ⟪jobs.a.path⟫ }}" }',
        ),
        [
          { code: 'unknown-reference', message: ["job 'b' reads an output of 'a' but does not need it"] },
          { code: 'unknown-reference', message: ["job 'a' has no output 'pth'", "did you mean 'path'?"] },
          { code: 'unknown-reference', message: ["no job 'z'"] },
          { code: 'bad-expression', message: ['write jobs.JOB.outputs.NAME'] },
        ],
      );
    });

    it('flags unknown names, unreadable and unclosed expressions', () => {
      expectDiagnostics(lines('run: echo ${{ ⟪parms.x⟫ }} ⟪${{ 1 + }}⟫', 'setup: echo ⟪${{⟫ params.x'), [
        { code: 'unknown-reference', message: ["unknown name 'parms'", "did you mean 'params'?"] },
        { code: 'bad-expression', message: ['cannot read'] },
        { code: 'bad-expression', message: ['never closed'] },
      ]);
    });
  });

  describe('sweeps', () => {
    it('refuses sweeps that expand to nothing', () => {
      expectDiagnostics(lines('run: echo ${{ params.a }}', '⟪sweep⟫:', '  parameters:', '    ⟪a⟫: { range: [3, 0] }'), [
        { code: 'sweep-size', message: ['expands to 0 runs'] },
        { code: 'sweep-domain', message: ['range [3, 0] holds no values'] },
      ]);
    });

    it('says how many runs an absurd sweep would make, and refuses it', () => {
      expectDiagnostics(
        lines('run: echo ${{ params.a }} ${{ params.b }}', '⟪sweep⟫:', '  parameters:', '    a: { range: [0, 1000] }', '    b: { range: [0, 200] }'),
        [{ code: 'sweep-size', message: ['expands to 200,000 runs, more than the limit of 10,000'] }],
      );
    });

    it('warns about a large sweep', () => {
      expectDiagnostics(lines('run: echo ${{ params.a }}', '⟪sweep⟫: { parameters: { a: { range: [0, 2000] } } }'), [
        { code: 'sweep-size', severity: 'warning', message: ['expands to 2,000 runs'] },
      ]);
    });

    it('checks what each method can do', () => {
      expectDiagnostics(lines('run: echo ${{ params.a }}', '⟪sweep⟫:', '  method: random', '  parameters: { a: { uniform: [0, 1] } }'), [
        { code: 'missing-key', message: ['a random sweep needs `samples: N`'] },
      ]);
      expectDiagnostics(lines('run: echo ${{ params.a }}', 'sweep:', '  parameters: { ⟪a⟫: { loguniform: [0.001, 0.1] } }'), [
        { code: 'sweep-domain', message: ['a grid sweep cannot enumerate a loguniform interval'] },
      ]);
    });

    it('warns about a swept parameter the command never reads', () => {
      expectDiagnostics(lines('run: echo ${{ params.a }}', 'sweep: { parameters: { a: [1, 2], ⟪b⟫: [3, 4] } }'), [
        { code: 'sweep-domain', severity: 'warning', message: ["sweep parameter 'b' is never used"] },
      ]);
    });
  });

  describe('broken input', () => {
    it('still yields a model and precise syntax errors for a half-typed spec', () => {
      const analysis = analyzeSpec(lines('name: half', 'run: python train.py', 'resources: { gpus: 2, memory: 8GB', 'retries: 3'), 'half.drover.yaml');
      assert.ok(analysis.diagnostics.some((d) => d.code === 'yaml-syntax'));
      assert.equal(analysis.model?.name, 'half');
      assert.equal(analysis.model?.jobs[0]?.run?.value, 'python train.py');
    });

    it('explains an empty spec and one that is not a mapping', () => {
      expectDiagnostics('⟪⟫', [{ code: 'nothing-to-run', message: ['the spec is empty'] }]);
      expectDiagnostics('⟪⟫# only a comment\n', [{ code: 'nothing-to-run' }]);
      expectDiagnostics('⟪- a\n- b⟫\n', [{ code: 'not-a-mapping', message: ['not a list'] }]);
    });
  });
});
