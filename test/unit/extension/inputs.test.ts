import assert from 'node:assert/strict';
import { analyzeSpec, expandSpec, hasErrors } from '../../../common/spec';
import { runIdsFrom } from '../../../extension/src/commands/run-args';
import { describeTarget, isRunTarget, parseTarget } from '../../../extension/src/model/target';
import { notebookSpecWithSettings, runnableKind, scriptSpec } from '../../../extension/src/script-spec';
import { isPlainAlias } from '../../../extension/src/host-alias';

describe('extension: host aliases', () => {
  it('hands ssh only plain aliases', () => {
    assert.ok(isPlainAlias('gpu-box-1'));
    assert.ok(isPlainAlias('me@10.0.0.5'));
    assert.ok(!isPlainAlias('-oProxyCommand=touch /tmp/x'));
    assert.ok(!isPlainAlias('a b'));
    assert.ok(!isPlainAlias(''));
  });
});

describe('extension: the spec generated for a script', () => {
  const workdir = '/home/me/project';

  it('is a valid one-job spec named after the file, running it from the workspace folder', () => {
    const text = scriptSpec({ file: `${workdir}/src/train.py`, workdir, gpus: 2, python: 'python3' });
    const analysis = analyzeSpec(text);
    assert.ok(!hasErrors(analysis.diagnostics), analysis.diagnostics.map((diagnostic) => diagnostic.message).join('; '));
    const [plan, ...rest] = expandSpec(analysis.model!);
    assert.equal(rest.length, 0);
    assert.equal(analysis.model!.name, 'train');
    assert.equal(plan!.command, 'python3 src/train.py');
    assert.equal(plan!.workdir, workdir);
    assert.equal(plan!.resources.gpus.count, 2);
  });

  it('runs shell scripts with bash and notebooks as notebooks, quoting odd file names', () => {
    const shell = expandSpec(analyzeSpec(scriptSpec({ file: `${workdir}/run it's.sh`, workdir, gpus: 0, python: 'python' })).model!)[0]!;
    assert.equal(shell.command, `bash 'run it'\\''s.sh'`);
    assert.equal(shell.resources.gpus.count, 0);
    const notebook = expandSpec(analyzeSpec(scriptSpec({ file: `${workdir}/eval.ipynb`, workdir, gpus: 1, python: 'python3' })).model!)[0]!;
    assert.equal(notebook.notebook, 'eval.ipynb');
    assert.equal(notebook.command, undefined);
  });

  it("runs a notebook with a one-job spec's settings (its command replaced), and refuses a workflow", () => {
    const spec = 'name: train\nrun: python3 train.py\nworkdir: ..\nresources: { gpus: 2 }\nenv: { MODE: fast }\nsweep: { parameters: { lr: [0.1, 0.01] } }\n';
    const text = notebookSpecWithSettings(spec, `${workdir}/specs/train.drover.yaml`, { file: `${workdir}/eval.ipynb`, env: { DROVER_NOTEBOOK_CELLS: '3-' } });
    const analysis = analyzeSpec(text);
    assert.ok(!hasErrors(analysis.diagnostics), analysis.diagnostics.map((diagnostic) => diagnostic.message).join('; '));
    const plans = expandSpec(analysis.model!);
    assert.deepEqual(plans.map((plan) => plan.params['lr']), [0.1, 0.01]);
    assert.equal(plans[0]!.notebook, 'eval.ipynb');
    assert.equal(plans[0]!.command, undefined);
    assert.equal(plans[0]!.workdir, workdir);
    assert.equal(plans[0]!.resources.gpus.count, 2);
    assert.deepEqual(plans[0]!.env, { MODE: 'fast', DROVER_NOTEBOOK_CELLS: '3-' });
    assert.throws(() => notebookSpecWithSettings('name: flow\njobs: { a: { run: "true" } }\n', '/x/flow.drover.yaml', { file: '/x/n.ipynb' }), /flow\.drover\.yaml is a workflow/);
  });

  it('names a file outside the workdir by its full path', () => {
    const plan = expandSpec(analyzeSpec(scriptSpec({ file: '/opt/tools/probe.py', workdir, gpus: 0, python: 'python3' })).model!)[0]!;
    assert.equal(plan.command, 'python3 /opt/tools/probe.py');
  });

  it('knows which files it runs', () => {
    assert.equal(runnableKind('/p/train.py'), 'python');
    assert.equal(runnableKind('/p/sweep.drover.yaml'), 'spec');
    assert.equal(runnableKind('/p/drover.yml'), 'spec');
    assert.equal(runnableKind('/p/config.yaml'), undefined);
  });
});

describe('extension: command arguments', () => {
  it('reads run targets from settings and arguments', () => {
    assert.deepEqual(parseTarget('any'), {});
    assert.deepEqual(parseTarget('any:2'), { gpus: 2 });
    assert.deepEqual(parseTarget('gpu-box-1:1'), { host: 'gpu-box-1', gpus: 1 });
    assert.equal(parseTarget(''), undefined);
    assert.equal(parseTarget('a b'), undefined);
    assert.ok(isRunTarget({ gpus: 1 }));
    assert.ok(isRunTarget({ host: 'local', gpus: 0 }));
    assert.ok(isRunTarget({ useSpec: true }));
    assert.ok(!isRunTarget([]));
    assert.ok(!isRunTarget({ gpus: -1 }));
    assert.ok(!isRunTarget({ scheme: 'file', path: '/x' }));
    assert.equal(describeTarget({ gpus: 1 }, false), 'on any host, 1 GPU');
    assert.equal(describeTarget({ useSpec: true }, true), "the spec's own settings");
  });

  it('takes runs from a tree selection, a node, ids or nothing', () => {
    const node = (id: number) => ({ kind: 'run', id });
    assert.deepEqual(runIdsFrom(node(3), [node(3), node(5)]), [3, 5]);
    assert.deepEqual(runIdsFrom(node(3)), [3]);
    assert.deepEqual(runIdsFrom(7), [7]);
    assert.deepEqual(runIdsFrom([1, 2, 2]), [1, 2]);
    assert.deepEqual(runIdsFrom({ id: 9 }), [9]);
    assert.deepEqual(runIdsFrom({ kind: 'group', id: 9 }), []);
    assert.deepEqual(runIdsFrom(undefined), []);
  });
});
