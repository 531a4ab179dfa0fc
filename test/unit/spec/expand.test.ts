import assert from 'node:assert/strict';
import fc from 'fast-check';
import { analyzeSpec, expandSpec, ExpansionError, substituteExpressions, type SpecModel } from '../../../common/spec';
import { lines } from '../../support/marked';

function model(text: string): SpecModel {
  const analysis = analyzeSpec(text, 'test.drover.yaml');
  const errors = analysis.diagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(errors.map((d) => d.message), []);
  return analysis.model!;
}

describe('spec expansion', () => {
  it('substitutes ${{ }} expressions exactly where the regular expression for them finds them', () => {
    const PATH = /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/;
    const resolve = (path: string[]): string | undefined => (path[0] === 'params' && path[1] !== 'unknown' ? `<${path.join('/')}>` : undefined);
    const byPattern = (template: string): string =>
      template.replace(/\$\{\{\s*([^}]*?)\s*\}\}/g, (whole, inner: string) => (PATH.test(inner) ? (resolve(inner.split('.')) ?? whole) : whole));
    const pieces = ['${{', '}}', '}', '{', '$', ' ', '\n', '\t', 'params', '.', 'lr', 'unknown', 'jobs', 'x', '-', '\u00a0'];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 24 }), (parts) => {
        const template = parts.join('');
        assert.equal(substituteExpressions(template, resolve), byPattern(template), JSON.stringify(template));
      }),
      { numRuns: 3000 },
    );
    assert.equal(substituteExpressions('a ${{ params.lr }} b ${{params.x}}', resolve), 'a <params/lr> b <params/x>');
    assert.equal(substituteExpressions('${{ a } b }} ${{ params.lr }}', resolve), '${{ a } b }} <params/lr>');
  });

  it('expands a grid to the cartesian product, first parameter slowest', () => {
    const runs = expandSpec(
      model(lines('name: s', 'run: python t.py --lr ${{ params.lr }} --seed ${{ params.seed }}', 'sweep:', '  max_parallel: 2', '  parameters:', '    lr: [1.0e-3, 3.0e-4]', '    seed: { range: [0, 3] }')),
    );
    assert.deepEqual(
      runs.map((run) => [run.key, run.command, run.sweepIndex, run.maxParallel]),
      [
        ['s[0]', 'python t.py --lr 0.001 --seed 0', 0, 2],
        ['s[1]', 'python t.py --lr 0.001 --seed 1', 1, 2],
        ['s[2]', 'python t.py --lr 0.001 --seed 2', 2, 2],
        ['s[3]', 'python t.py --lr 0.0003 --seed 0', 3, 2],
        ['s[4]', 'python t.py --lr 0.0003 --seed 1', 4, 2],
        ['s[5]', 'python t.py --lr 0.0003 --seed 2', 5, 2],
      ],
    );
    assert.deepEqual(runs[4]!.params, { lr: 0.0003, seed: 1 });
  });

  it('steps ranges by fractions without float noise', () => {
    const runs = expandSpec(model(lines('run: t ${{ params.p }}', 'sweep: { parameters: { p: { range: [0, 1, 0.1] } } }')));
    assert.deepEqual(runs.map((run) => run.params['p']), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
  });

  it('draws random sweeps reproducibly from the seed, inside their bounds', () => {
    const text = (seed: number) =>
      lines('run: t ${{ params.lr }} ${{ params.h }} ${{ params.d }}', 'sweep:', '  method: random', '  samples: 50', `  seed: ${seed}`, '  parameters:', '    lr: { loguniform: [1.0e-4, 1.0e-1] }', '    h: [16, 32, 64]', '    d: { uniform: [0.1, 0.5] }');
    const first = expandSpec(model(text(7)));
    const again = expandSpec(model(text(7)));
    const other = expandSpec(model(text(8)));
    assert.equal(first.length, 50);
    assert.deepEqual(first, again);
    assert.notDeepEqual(first.map((run) => run.params), other.map((run) => run.params));
    for (const { params } of first) {
      assert.ok((params['lr'] as number) >= 1e-4 && (params['lr'] as number) <= 0.1);
      assert.ok([16, 32, 64].includes(params['h'] as number));
      assert.ok((params['d'] as number) >= 0.1 && (params['d'] as number) <= 0.5);
    }
    // A log-uniform draw spreads over the decades rather than bunching at the top.
    assert.ok(first.some(({ params }) => (params['lr'] as number) < 1e-3));
    assert.deepEqual(expandSpec(model(text(7)), { seed: 8 }).map((run) => run.params), other.map((run) => run.params));
  });

  it('applies overrides to params and fixes swept parameters', () => {
    const spec = model(lines('run: t --lr ${{ params.lr }} --e ${{ params.epochs }}', 'params: { epochs: 10 }', 'sweep: { parameters: { lr: [0.1, 0.01, 0.001] } }'));
    const runs = expandSpec(spec, { overrides: { lr: 0.5, epochs: 2 } });
    assert.deepEqual(runs.map((run) => run.command), ['t --lr 0.5 --e 2']);
  });

  it('refuses an override for a parameter the spec lacks, suggesting the right one', () => {
    const spec = model(lines('run: t --lr ${{ params.lr }}', 'params: { lr: 0.1 }'));
    assert.throws(() => expandSpec(spec, { overrides: { lrr: 1 } }), (error: unknown) => {
      assert.ok(error instanceof ExpansionError);
      assert.match(error.message, /no parameter 'lrr'; did you mean 'lr'\? \(it has lr\)/);
      return true;
    });
  });

  it('turns needs into edges between runs, fanning in from a swept job', () => {
    const runs = expandSpec(
      model(
        lines(
          'jobs:',
          '  evaluate: { needs: [train], run: "eval ${{ jobs.train.outputs.model }}" }',
          '  prep: { run: prep, outputs: { data: d } }',
          '  train:',
          '    needs: [prep]',
          '    run: train --seed ${{ params.seed }}',
          '    outputs: { model: m }',
          '    sweep: { parameters: { seed: [1, 2] } }',
        ),
      ),
    );
    const byKey = Object.fromEntries(runs.map((run) => [run.key, run]));
    assert.deepEqual(Object.keys(byKey), ['evaluate', 'prep', 'train[0]', 'train[1]']);
    assert.deepEqual(byKey['evaluate']!.needs, ['train[0]', 'train[1]']);
    assert.deepEqual(byKey['train[1]']!.needs, ['prep']);
    // Outputs are only known once the upstream run ends: left for the runner.
    assert.equal(byKey['evaluate']!.command, 'eval ${{ jobs.train.outputs.model }}');
  });

  it('quotes parameter values in commands, but not in the environment', () => {
    const spec = model(lines('run: echo ${{ params.msg }}', "params: { msg: \"it's a $HOME; rm -rf /\" }", 'env: { MESSAGE: "${{ params.msg }}" }'));
    const [run] = expandSpec(spec);
    assert.equal(run!.command, `echo 'it'\\''s a $HOME; rm -rf /'`);
    assert.equal(run!.env['MESSAGE'], "it's a $HOME; rm -rf /");
  });

  it('carries the resolved settings of each run', () => {
    const [run] = expandSpec(
      model(lines('name: n', 'notebook: eval.ipynb', 'params: { split: test }', 'resources: { gpus: "A100:2", memory: 32GB }', 'retries: 2', 'timeout: 1h', 'priority: 5', 'placement: { hosts: [box] }')),
    );
    assert.deepEqual(run, {
      key: 'n',
      job: 'n',
      params: { split: 'test' },
      notebook: 'eval.ipynb',
      workdir: '.',
      env: {},
      resources: { gpus: { count: 2, type: 'A100' }, memoryBytes: 32e9 },
      hosts: ['box'],
      retries: 2,
      timeoutSeconds: 3600,
      priority: 5,
      needs: [],
    });
  });

  it('counts and draws from huge ranges without listing them', () => {
    const grid = analyzeSpec(lines('run: t ${{ params.i }}', 'sweep: { parameters: { i: { range: [0, 1.0e+9] } } }'), 'huge.drover.yaml');
    assert.match(grid.diagnostics.map((d) => d.message).join('\n'), /expands to 1,000,000,000 runs, more than the limit/);
    const runs = expandSpec(model(lines('run: t ${{ params.i }}', 'sweep: { method: random, samples: 3, parameters: { i: { range: [0, 1.0e+9, 2] } } }')));
    assert.equal(runs.length, 3);
    for (const run of runs) assert.ok(Number.isInteger(run.params['i']) && (run.params['i'] as number) % 2 === 0 && (run.params['i'] as number) < 1e9);
  });
});
