import assert from 'node:assert/strict';
import type { Hover, MarkupContent } from 'vscode-languageserver';
import type { SpecContext } from '../../../language-server/src/service/completion';
import { doHover } from '../../../language-server/src/service/hover';
import { SpecDocument } from '../../../language-server/src/service/spec-document';
import { lines, marked } from '../../support/marked';

/** Hovers at the fixture's `‸`; the hover's range must be the fixture's `⟪…⟫`, when it marks one. */
function hoverAt(source: string, context?: SpecContext): { hover: Hover | null; text: string } {
  const fixture = marked(source);
  assert.equal(fixture.cursors.length, 1, 'fixture: one ‸');
  const document = new SpecDocument('file:///tmp/ws/test.drover.yaml', 1, fixture.text);
  const hover = doHover(document, document.positionAt(fixture.cursors[0]!), context);
  if (hover && fixture.ranges.length === 1) assert.deepEqual(hover.range, document.rangeOf(fixture.ranges[0]!), 'hover range');
  const contents = hover?.contents as MarkupContent | undefined;
  if (hover) assert.equal(contents!.kind, 'markdown');
  return { hover, text: contents?.value ?? '' };
}

/** The design's swept job, with a cursor placed by replacing `at` with its marked form. */
function swept(at: string, marked: string): string {
  const spec = lines(
    'name: resnet-sweep',
    'run: python train.py --lr ${{ params.lr }} --seed ${{ params.seed }} --epochs ${{ params.epochs }}',
    'params: { epochs: 10 }',
    'resources: { gpus: "A100:2", cpus: 4, memory: 16GB }',
    'placement: { hosts: [gpu-box-1, local] }',
    'timeout: 2h',
    'sweep:',
    '  method: grid',
    '  max_parallel: 4',
    '  parameters:',
    '    lr: [1.0e-3, 3.0e-4]',
    '    seed: { range: [0, 3] }',
  );
  assert.ok(spec.includes(at), at);
  return spec.replace(at, marked);
}

const A100 = { name: 'NVIDIA A100-SXM4-40GB', memoryTotalBytes: 40 * 2 ** 30 };

const HOSTS: SpecContext = {
  hosts: [
    { name: 'gpu-box-1', cpus: 64, memoryBytes: 512e9, gpus: [{ ...A100, foreignPids: [] }, { ...A100, foreignPids: [] }, { ...A100, foreignPids: [] }, { ...A100, foreignPids: [] }] },
    { name: 'gpu-box-2', cpus: 32, memoryBytes: 256e9, gpus: [{ ...A100, jobId: 7, foreignPids: [] }, { ...A100, foreignPids: [4242] }, { ...A100, foreignPids: [] }] },
    { name: 'small', cpus: 2, memoryBytes: 8e9, gpus: [{ ...A100, foreignPids: [] }, { ...A100, foreignPids: [] }] },
    { name: 'local', cpus: 8, memoryBytes: 32e9, gpus: [{ name: 'NVIDIA GeForce RTX 4090', memoryTotalBytes: 24 * 2 ** 30, foreignPids: [] }] },
  ],
};

describe('language server: hover', () => {
  it('documents a key from the schema, over the key', () => {
    const { text } = hoverAt(swept('timeout', '⟪time‸out⟫'));
    assert.match(text, /^\*\*timeout\*\*\n\nWall-clock limit of one attempt/);
    assert.ok(text.includes('```yaml\ntimeout: 2h\n```'), text);
  });

  it('documents keys inside blocks, flow mappings and workflow jobs', () => {
    assert.match(hoverAt(swept('max_parallel', '⟪max_‸parallel⟫')).text, /At most this many runs of the sweep at once/);
    assert.match(hoverAt(swept('cpus', '⟪cp‸us⟫')).text, /CPU cores/);
    assert.match(hoverAt(swept('gpus', '⟪gpus‸⟫')).text, /GPUs per run: a count/);
    assert.match(hoverAt(lines('jobs:', '  train:', '    ⟪nee‸ds⟫: []', '    run: x')).text, /must succeed before this one starts/);
    assert.match(hoverAt(lines('jobs:', '  train:', '    run: x', '    resources:', '      ⟪mem‸ory⟫: 2GB')).text, /Memory \(RAM\) for the run/);
  });

  it('lists an enum key\'s values with their meaning', () => {
    const { text } = hoverAt(swept('method', '⟪met‸hod⟫'));
    assert.ok(text.includes("- `grid`: Every combination of the parameters' values."), text);
    assert.ok(text.includes('Default: `grid`'), text);
  });

  it('says what a sweep expands to: 6 runs for the design example', () => {
    const { text } = hoverAt(swept('sweep:', '⟪swe‸ep⟫:'));
    assert.ok(text.includes('Expands to 6 runs (grid: 2 × 3), at most 4 at a time.'), text);
    assert.ok(text.includes('Run the job once per point of a parameter space'), text);
  });

  it('says what a random sweep draws, and a workflow job\'s sweep', () => {
    const random = lines('run: x ${{ params.lr }}', '⟪sw‸eep⟫:', '  method: random', '  samples: 8', '  seed: 7', '  parameters:', '    lr: { loguniform: [1.0e-4, 1.0e-1] }');
    assert.ok(hoverAt(random).text.includes('Expands to 8 samples (random, seed 7).'));
    const workflow = lines('jobs:', '  a:', '    run: x ${{ params.n }}', '    ⟪swe‸ep⟫: { parameters: { n: [1, 2, 3] } }', '  b:', '    run: y');
    assert.ok(hoverAt(workflow).text.includes('Expands to 3 runs (grid: 3).'));
  });

  it('shows a parameter\'s swept values or its value over the expression', () => {
    assert.match(hoverAt(swept('${{ params.lr }}', '⟪${{ params.l‸r }}⟫')).text, /^\*\*params\.lr\*\*\n\nSwept \(grid\): 0\.001, 0\.0003$/);
    assert.ok(hoverAt(swept('${{ params.seed }}', '⟪${{ para‸ms.seed }}⟫')).text.includes('Swept (grid): 0, 1, 2'));
    assert.ok(hoverAt(swept('${{ params.epochs }}', '⟪‸${{ params.epochs }}⟫')).text.includes('Value: `10`'));
  });

  it('says when the sweep overrides a parameter, and when a parameter is unknown', () => {
    const both = lines('run: x ${{ params.l‸r }}', 'params: { lr: 0.1 }', 'sweep: { parameters: { lr: [1, 2] } }');
    assert.ok(hoverAt(both).text.includes('`params` sets `0.1`, which the sweep overrides.'));
    assert.ok(hoverAt(lines('run: x ${{ params.nop‸e }}')).text.includes('Not a parameter of job `test`'));
  });

  it('shows a workflow job\'s inherited params and an upstream output', () => {
    const workflow = (first: string, second: string) =>
      lines(
        'params: { split: test }',
        'jobs:',
        '  prep:',
        `    run: python prep.py --split ${first}`,
        '    outputs: { features: "path of the features file" }',
        '  train:',
        '    needs: [prep]',
        `    run: python train.py ${second}`,
      );
    assert.equal(hoverAt(workflow('⟪${{ params.sp‸lit }}⟫', '${{ jobs.prep.outputs.features }}')).text, '**params.split**\n\nValue: `test`');
    assert.equal(hoverAt(workflow('${{ params.split }}', '⟪${{ jobs.prep.outputs.feat‸ures }}⟫')).text, 'Output `features` of job `prep`: path of the features file');
  });

  it('says which hosts can take the resources, from the context', () => {
    const { text } = hoverAt(swept('resources', '⟪reso‸urces⟫'), HOSTS);
    assert.ok(text.includes('Needs 2 GPUs of type A100, 4 CPUs, 16 GB memory.'), text);
    assert.ok(text.includes('Fits on: gpu-box-1 (4 × A100 free), gpu-box-2 (3 × A100, 1 free)'), text);
    assert.ok(text.includes('Not on: small (has 2 CPUs, 8 GB memory), local (has 0 GPUs of type A100)'), text);
    assert.ok(text.includes('What one run needs.'), text);
    assert.ok(!hoverAt(swept('resources', 'reso‸urces')).text.includes('Fits on'), 'nothing about hosts without them');
  });

  it('checks GPU memory and jobs without GPUs', () => {
    const memory = lines('run: x', '⟪resour‸ces⟫: { gpus: { count: 1, memory: 30GB } }');
    assert.ok(hoverAt(memory, HOSTS).text.includes('Fits on: gpu-box-1 (4 × A100 free), gpu-box-2 (3 × A100, 1 free), small (2 × A100 free)\n\nNot on: local (has 0 GPUs with 30 GB)'));
    const cpuOnly = lines('run: x', '⟪resour‸ces⟫: { cpus: 16 }');
    assert.ok(hoverAt(cpuOnly, HOSTS).text.includes('Needs no GPU, 16 CPUs.\n\nFits on: gpu-box-1, gpu-box-2\n\nNot on: small (has 2 CPUs), local (has 8 CPUs)'));
    const bare = hoverAt(lines('run: x', 'resour‸ces: { gpus: 1, cpus: 4 }'), { hosts: [{ name: 'box', gpus: [{ name: 'Tesla T4' }] }] }).text;
    assert.ok(bare.includes('Fits on: box (1 × T4)'), bare);
    assert.ok(bare.includes('Not checked (the host reports no CPUs or memory): box'), bare);
  });

  it('shows a host alias\'s GPUs from the context', () => {
    const { text } = hoverAt(swept('gpu-box-1', '⟪gpu-b‸ox-1⟫'), HOSTS);
    assert.equal(text, '**gpu-box-1**\n\n- 4 × NVIDIA A100-SXM4-40GB (40 GiB), 4 free\n\n64 CPUs, 512 GB memory');
    assert.match(hoverAt(lines('run: x', 'placement: { hosts: [⟪no‸pe⟫] }'), HOSTS).text, /`nope` is not a host the daemon knows \(it knows `gpu-box-1`, `gpu-box-2`, `small`, `local`\)/);
    assert.match(hoverAt(swept('gpu-box-1', 'gpu-b‸ox-1')).text, /^\*\*hosts\*\*\n\nHost aliases the job may run on/);
  });

  it('explains an enum value', () => {
    assert.equal(hoverAt(swept('method: grid', 'method: ⟪gr‸id⟫')).text, "`grid`: Every combination of the parameters' values.");
  });

  it('documents the field of any other value', () => {
    assert.match(hoverAt(swept('2h', '⟪2‸h⟫')).text, /^\*\*timeout\*\*\n\nWall-clock limit/);
  });

  it('says nothing off the spec or on unknown keys', () => {
    assert.equal(hoverAt(lines('run: x', '', '‸', '# a comment')).hover, null);
    assert.equal(hoverAt(lines('run: x', 'bog‸us: 1')).hover, null);
    assert.equal(hoverAt('‸').hover, null);
  });

  it('never throws on broken text', () => {
    for (const text of ['resources: {gpus: [\n', 'jobs:\n  a: { needs: [b }\n', 'run: ${{ params.\n', ':\n-\n', 'sweep:\n  parameters:\n    x: { range: [0, 1e5] }\n']) {
      const document = new SpecDocument('file:///w/broken.drover.yaml', 1, text);
      for (let offset = 0; offset <= text.length; offset++) {
        assert.doesNotThrow(() => doHover(document, document.positionAt(offset), HOSTS), `${JSON.stringify(text)} at ${offset}`);
      }
    }
  });
});
