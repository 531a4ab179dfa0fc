import assert from 'node:assert/strict';
import { CompletionItemKind, InsertTextFormat, type CompletionItem, type CompletionList, type MarkupContent, type TextEdit } from 'vscode-languageserver';
import { doComplete, gpuModelToken, MAX_JOB_ITEMS, type SpecContext } from '../../../language-server/src/service/completion';
import { SpecDocument } from '../../../language-server/src/service/spec-document';
import { lines, marked } from '../../support/marked';

/** Completes at the fixture's `‸`. */
function complete(source: string, context?: SpecContext): { list: CompletionList; document: SpecDocument } {
  const fixture = marked(source);
  assert.equal(fixture.cursors.length, 1, 'fixture: one ‸');
  const document = new SpecDocument('file:///tmp/ws/test.drover.yaml', 1, fixture.text);
  return { list: doComplete(document, document.positionAt(fixture.cursors[0]!), context), document };
}

function labels(source: string, context?: SpecContext, kind?: CompletionItemKind): string[] {
  return complete(source, context)
    .list.items.filter((item) => kind === undefined || item.kind === kind)
    .map((item) => item.label);
}

function keys(source: string): string[] {
  return labels(source, undefined, CompletionItemKind.Property);
}

function find(list: CompletionList, label: string, kind: CompletionItemKind): CompletionItem {
  const item = list.items.find((candidate) => candidate.label === label && candidate.kind === kind);
  assert.ok(item, `no ${label} (kind ${kind}) in ${list.items.map((candidate) => candidate.label).join(', ')}`);
  return item;
}

function newText(item: CompletionItem): string {
  return (item.textEdit as TextEdit).newText;
}

function documentation(item: CompletionItem): string {
  const content = item.documentation as MarkupContent;
  assert.equal(content?.kind, 'markdown', `${item.label} has markdown documentation`);
  return content.value;
}

const JOB_KEYS = ['name', 'description', 'run', 'notebook', 'params', 'setup', 'workdir', 'resources', 'placement', 'env', 'retries', 'timeout', 'priority', 'schedule', 'catch_up', 'needs', 'outputs', 'sweep', 'slurm'];

const WORKFLOW = lines(
  'name: nightly',
  'params: { split: test }',
  'jobs:',
  '  prep:',
  '    run: python prep.py',
  '    outputs: { features: "path of the features file" }',
  '  train:',
  '    needs: [prep]',
  '    run: python train.py --features ${{ jobs.prep.outputs.features }}',
  '    outputs: { checkpoint: "the best checkpoint", log: "the training log" }',
);

const HOSTS: SpecContext = {
  hosts: [
    { name: 'box-1', gpus: Array.from({ length: 4 }, () => ({ name: 'NVIDIA A100-SXM4-40GB' })) },
    { name: 'box-2', gpus: [{ name: 'NVIDIA GeForce RTX 4090' }, { name: 'Tesla T4' }, { name: 'NVIDIA A100-PCIE-80GB' }] },
    { name: 'local', gpus: [] },
  ],
};

describe('language server: completion', () => {
  describe('keys', () => {
    it('offers a job spec the keys it has not written yet, in schema order', () => {
      assert.deepEqual(keys(lines('name: s', 'run: python train.py', '‸')), JOB_KEYS.filter((key) => !['name', 'run', 'needs'].includes(key)));
    });

    it('offers the top-level keys in an empty document, `jobs` included and `needs` not', () => {
      assert.deepEqual(keys('‸'), [...JOB_KEYS.filter((key) => key !== 'needs'), 'jobs']);
    });

    it('offers a workflow only the keys of a workflow at the top', () => {
      assert.deepEqual(keys(`${WORKFLOW}‸`), ['description', 'schedule', 'catch_up', 'env', 'workdir']);
    });

    it('documents each key in markdown from the schema, with its examples as YAML', () => {
      const { list } = complete(lines('run: x', '‸'));
      const timeout = documentation(find(list, 'timeout', CompletionItemKind.Property));
      assert.match(timeout, /^Wall-clock limit of one attempt/);
      assert.ok(timeout.includes('```yaml\ntimeout: 2h\n```'), timeout);
      const resources = documentation(find(list, 'resources', CompletionItemKind.Property));
      assert.ok(resources.includes('```yaml\nresources: { gpus: 1, cpus: 4, memory: 16GB }\n```'), resources);
      assert.ok(documentation(find(list, 'retries', CompletionItemKind.Property)).includes('Default: `0`'));
      for (const item of list.items) assert.ok(documentation(item).length > 0, `${item.label} is documented`);
    });

    it('inserts `key: ` for a value and `key:` plus an indented line for a mapping, as snippets', () => {
      const { list } = complete(lines('run: x', '‸'));
      const insert = (label: string) => find(list, label, CompletionItemKind.Property);
      assert.equal(newText(insert('timeout')), 'timeout: ');
      assert.equal(newText(insert('retries')), 'retries: ');
      assert.equal(newText(insert('resources')), 'resources:\n  ');
      assert.equal(newText(insert('sweep')), 'sweep:\n  ');
      assert.equal(insert('resources').insertTextFormat, InsertTextFormat.Snippet);
      assert.equal(insert('timeout').insertTextFormat, InsertTextFormat.Snippet);
    });

    it('offers snippets for the common blocks of a job', () => {
      const { list } = complete(lines('run: x', '‸'));
      const snippet = (label: string) => find(list, label, CompletionItemKind.Snippet);
      assert.equal(newText(snippet('resources')), 'resources: { gpus: ${1:1}, cpus: ${2:4}, memory: ${3:16GB} }');
      assert.equal(newText(snippet('sweep')), 'sweep:\n  method: ${1|grid,random|}\n  max_parallel: ${2:4}\n  parameters:\n    ${3:lr}: [${4:1e-3, 3e-4}]');
      assert.equal(newText(snippet('retries')), 'retries: ${1:2}');
      for (const label of ['resources', 'sweep', 'retries']) assert.equal(snippet(label).insertTextFormat, InsertTextFormat.Snippet);
      // Not once the block is written.
      assert.deepEqual(labels(lines('run: x', 'resources: { gpus: 1 }', 'sweep: { parameters: { a: [1] } }', '‸'), undefined, CompletionItemKind.Snippet), ['retries']);
    });

    it('offers the keys of `resources` inside it, block or flow, without those written', () => {
      assert.deepEqual(keys(lines('run: x', 'resources:', '  ‸')), ['gpus', 'cpus', 'memory']);
      assert.deepEqual(keys(lines('run: x', 'resources:', '  gpus: 1', '  ‸', 'timeout: 2h')), ['cpus', 'memory']);
      assert.deepEqual(keys(lines('run: x', 'resources: { gpus: 1, ‸ }')), ['cpus', 'memory']);
      const { list } = complete(lines('run: x', 'resources: { ‸ }'));
      assert.equal(newText(find(list, 'cpus', CompletionItemKind.Property)), 'cpus: ');
      assert.deepEqual(labels(lines('run: x', 'resources: { ‸ }'), undefined, CompletionItemKind.Snippet), []);
    });

    it('offers the keys of a GPU request mapping and of a sweep parameter', () => {
      assert.deepEqual(keys(lines('run: x', 'resources:', '  gpus:', '    ‸')), ['count', 'type', 'memory']);
      assert.deepEqual(keys(lines('run: x', 'sweep:', '  parameters:', '    lr:', '      ‸')), ['range', 'uniform', 'loguniform']);
      assert.deepEqual(keys(lines('run: x', 'sweep:', '  ‸', '  parameters: { a: [1] }')), ['method', 'max_parallel', 'early_stop', 'samples', 'seed']);
    });

    it('offers a workflow job the keys of a job', () => {
      const offered = keys(lines('jobs:', '  train:', '    run: python train.py', '    ‸'));
      assert.deepEqual(offered, JOB_KEYS.filter((key) => key !== 'run'));
    });

    it('lets the indentation of an empty line decide the mapping it is in', () => {
      const text = (indent: string) => lines('name: nightly', 'jobs:', '  train:', '    run: python train.py', `${indent}‸`, '  evaluate:', '    notebook: eval.ipynb');
      assert.deepEqual(keys(text('    ')), JOB_KEYS.filter((key) => key !== 'run'));
      assert.deepEqual(keys(text('  ')), [], 'job names are free');
      assert.deepEqual(keys(text('')), ['description', 'schedule', 'catch_up', 'params', 'env', 'workdir']);
    });

    it('completes a partly typed key, replacing what is typed', () => {
      const { list, document } = complete(lines('jobs:', '  train:', '    run: x', '    ti‸'));
      const timeout = find(list, 'timeout', CompletionItemKind.Property);
      const edit = timeout.textEdit as TextEdit;
      assert.equal(edit.newText, 'timeout: ');
      assert.deepEqual(edit.range, { start: { line: 3, character: 4 }, end: { line: 3, character: 6 } });
      assert.equal(document.text.slice(document.offsetAt(edit.range.start), document.offsetAt(edit.range.end)), 'ti');
      assert.ok(list.items.some((item) => item.label === 'run') === false, 'run is written');
    });

    it('completes a partly typed key at the top and in a flow mapping', () => {
      assert.ok(keys(lines('run: x', 'reso‸')).includes('resources'));
      const { list } = complete(lines('run: x', 'resources: { gpus: 1, me‸ }'));
      const edit = find(list, 'memory', CompletionItemKind.Property).textEdit as TextEdit;
      assert.deepEqual(edit.range, { start: { line: 1, character: 22 }, end: { line: 1, character: 24 } });
    });

    it('replaces only the key where the colon is already written', () => {
      const { list } = complete(lines('run: x', 'time‸: 2h'));
      const item = find(list, 'timeout', CompletionItemKind.Property);
      assert.equal(newText(item), 'timeout');
      assert.equal(item.insertTextFormat, InsertTextFormat.PlainText);
    });

    it('offers nothing in a comment, a block scalar or a free-form mapping', () => {
      assert.deepEqual(labels(lines('run: x   # ‸')), []);
      assert.deepEqual(labels(lines('run: |', '  python train.py', '  ‸')), []);
      assert.deepEqual(labels(lines('run: x', 'env:', '  ‸')), []);
      assert.deepEqual(labels(lines('run: x', 'name: a', '   ‸')), []);
    });
  });

  describe('values', () => {
    it('offers the values of an enum with their descriptions', () => {
      const { list } = complete(lines('run: x', 'sweep:', '  method: ‸', '  parameters: { a: [1] }'));
      assert.deepEqual(list.items.map((item) => item.label), ['grid', 'random']);
      assert.equal(documentation(list.items[0]!), "Every combination of the parameters' values.");
      assert.match(documentation(list.items[1]!), /drawn at random/);
      assert.deepEqual(labels(lines('run: x', 'sweep: { method: ‸ }')), ['grid', 'random']);
      const edit = complete(lines('run: x', 'sweep:', '  method: ra‸')).list.items[1]!.textEdit as TextEdit;
      assert.deepEqual(edit, { range: { start: { line: 2, character: 10 }, end: { line: 2, character: 12 } }, newText: 'random' });
    });

    it('offers the other jobs in a flow `needs` list, but for those listed', () => {
      const spec = `${WORKFLOW}  evaluate:\n    needs: [‸]\n    notebook: eval.ipynb\n`;
      assert.deepEqual(labels(spec), ['prep', 'train']);
      assert.deepEqual(labels(`${WORKFLOW}  evaluate:\n    needs: [train, ‸]\n`), ['prep']);
      const { list } = complete(spec);
      assert.equal(find(list, 'prep', CompletionItemKind.Reference).detail, 'python prep.py');
      assert.ok(documentation(find(list, 'prep', CompletionItemKind.Reference)).includes('`features`'));
    });

    it('offers the other jobs in a block `needs` list', () => {
      assert.deepEqual(labels(`${WORKFLOW}  evaluate:\n    notebook: eval.ipynb\n    needs:\n      - ‸\n`), ['prep', 'train']);
      assert.deepEqual(labels(`${WORKFLOW}  evaluate:\n    needs:\n      - prep\n      - ‸\n`), ['train']);
      assert.deepEqual(labels(`${WORKFLOW}  evaluate:\n    needs:\n    - tr‸\n`), ['prep', 'train']);
    });

    it('never offers a job itself in its needs', () => {
      assert.deepEqual(labels(lines('jobs:', '  a: { run: x }', '  b:', '    run: y', '    needs: [‸]')), ['a']);
    });

    it('offers host aliases from the context in `placement.hosts`, and none without it', () => {
      assert.deepEqual(labels(lines('run: x', 'placement:', '  hosts: [‸]'), HOSTS), ['box-1', 'box-2', 'local']);
      assert.deepEqual(labels(lines('run: x', 'placement: { hosts: [box-1, ‸] }'), HOSTS), ['box-2', 'local']);
      assert.deepEqual(labels(lines('run: x', 'placement:', '  hosts:', '    - ‸'), HOSTS), ['box-1', 'box-2', 'local']);
      assert.deepEqual(labels(lines('run: x', 'placement:', '  hosts: [‸]')), []);
      const box = complete(lines('run: x', 'placement:', '  hosts: [‸]'), HOSTS).list.items[0]!;
      assert.equal(box.detail, '4 × A100');
      assert.ok(documentation(box).includes('4 × NVIDIA A100-SXM4-40GB'));
    });

    it('offers the GPU types of the context in a `gpus` string and a GPU `type`', () => {
      assert.deepEqual(labels(lines('run: x', 'resources: { gpus: "‸" }'), HOSTS), ['A100', 'T4']);
      assert.deepEqual(labels(lines('run: x', 'resources:', '  gpus: A‸'), HOSTS), ['A100', 'T4']);
      assert.deepEqual(labels(lines('run: x', 'resources:', '  gpus: { type: ‸ }'), HOSTS), ['A100', 'T4']);
      assert.deepEqual(labels(lines('run: x', 'resources: { gpus: "‸" }')), []);
      assert.deepEqual(labels(lines('run: x', 'resources: { gpus: 2‸ }'), HOSTS), []);
      const a100 = complete(lines('run: x', 'resources: { gpus: "‸" }'), HOSTS).list.items[0]!;
      assert.equal(a100.detail, 'NVIDIA A100-SXM4-40GB, NVIDIA A100-PCIE-80GB');
      assert.ok(documentation(a100).includes('box-1 (4), box-2 (1)'));
      const edit = a100.textEdit as TextEdit;
      assert.deepEqual(edit.range, { start: { line: 1, character: 20 }, end: { line: 1, character: 20 } });
    });

    it('reads the model token of GPU names as the scheduler matches them', () => {
      assert.equal(gpuModelToken('NVIDIA A100-SXM4-40GB'), 'A100');
      assert.equal(gpuModelToken('NVIDIA H100 80GB HBM3'), 'H100');
      assert.equal(gpuModelToken('Tesla V100-SXM2-16GB'), 'V100');
      assert.equal(gpuModelToken('NVIDIA RTX A6000'), 'A6000');
      assert.equal(gpuModelToken('NVIDIA L40S'), 'L40S');
      assert.equal(gpuModelToken('NVIDIA GeForce RTX 4090'), undefined);
    });
  });

  describe('expressions', () => {
    const SWEPT = lines(
      'name: s',
      'run: python train.py --lr ${{ params.‸ }}',
      'params: { epochs: 10, data: ./data }',
      'sweep:',
      '  parameters:',
      '    lr: [1.0e-3, 3.0e-4]',
      '    seed: { range: [0, 3] }',
    );

    it('offers the job\'s params (by name) and its sweep\'s (in order) after `params.`', () => {
      const { list } = complete(SWEPT);
      assert.deepEqual(list.items.map((item) => item.label), ['data', 'epochs', 'lr', 'seed']);
      assert.equal(find(list, 'epochs', CompletionItemKind.Variable).detail, '= 10');
      assert.equal(find(list, 'lr', CompletionItemKind.Variable).detail, 'swept: 0.001, 0.0003');
      assert.equal(find(list, 'seed', CompletionItemKind.Variable).detail, 'swept: 0, 1, 2');
      assert.equal(newText(list.items[1]!), 'epochs');
    });

    it('replaces a partly typed parameter name', () => {
      const { list } = complete(lines('run: echo ${{ params.ep‸ }}', 'params: { epochs: 3 }'));
      assert.deepEqual(list.items[0]!.textEdit, { range: { start: { line: 0, character: 21 }, end: { line: 0, character: 23 } }, newText: 'epochs' });
    });

    it('offers a workflow job its own and the workflow\'s params, and only those', () => {
      const spec = `${WORKFLOW}  evaluate:\n    params: { limit: 5 }\n    run: python eval.py --split \${{ params.‸ }}\n`;
      assert.deepEqual(labels(spec), ['limit', 'split']);
    });

    it('offers the namespaces right after `${{ `', () => {
      assert.deepEqual(labels(lines('run: echo ${{ ‸ }}')), ['params']);
      assert.deepEqual(labels(`${WORKFLOW}  evaluate:\n    run: echo \${{ ‸\n`), ['params', 'jobs']);
      assert.deepEqual(labels(`${WORKFLOW}  evaluate:\n    run: echo \${{ p‸ }}\n`), ['params', 'jobs']);
    });

    it('offers the other jobs after `${{ jobs.`, those it needs first', () => {
      const { list } = complete(`${WORKFLOW}  evaluate:\n    needs: [train]\n    run: echo \${{ jobs.‸\n`);
      assert.deepEqual(list.items.map((item) => item.label), ['prep', 'train']);
      assert.ok(list.items.every((item) => item.sortText!.startsWith('0')), 'evaluate needs train, and prep through it');
      assert.deepEqual(labels(`${WORKFLOW.replace('needs: [prep]\n    run: python train.py --features ${{ jobs.prep.outputs.features }}', 'run: echo ${{ jobs.‸ }}')}`), ['prep']);
    });

    it('offers `outputs` after a job, and its declared outputs after `outputs.`', () => {
      assert.deepEqual(labels(`${WORKFLOW}  evaluate:\n    run: echo \${{ jobs.train.‸ }}\n`), ['outputs']);
      const { list } = complete(`${WORKFLOW}  evaluate:\n    needs: [train]\n    run: echo \${{ jobs.train.outputs.‸ }}\n`);
      assert.deepEqual(list.items.map((item) => item.label), ['checkpoint', 'log']);
      assert.equal(documentation(list.items[0]!), 'Output `checkpoint` of job `train`: the best checkpoint');
      assert.deepEqual(labels(`${WORKFLOW}  evaluate:\n    run: echo \${{ jobs.nope.outputs.‸ }}\n`), []);
    });

    it('offers no job names in a single-job spec', () => {
      assert.deepEqual(labels(lines('run: echo ${{ jobs.‸ }}')), []);
    });
  });

  describe('robustness', () => {
    const BROKEN = [
      '',
      ':',
      '- a\n- ‸',
      'run: "unclosed\nresources: {gpus: [\n',
      'jobs:\n  a:\n    needs: [b\n  b: { run: x, needs: [a] }\n',
      'run: ${{ params.\n${{ jobs.a.outputs.\n',
      'sweep:\n  parameters:\n    lr: { range: [0, 1e5] }\n',
      '\t- : {[\n"\'',
      'a: &x { b: *x }\n',
      'jobs: [1, 2]\n',
    ];

    it('never throws, wherever the cursor is', () => {
      for (const text of BROKEN.map((source) => source.replace('‸', ''))) {
        const document = new SpecDocument('file:///w/broken.drover.yaml', 1, text);
        for (let offset = 0; offset <= text.length; offset++) {
          assert.doesNotThrow(() => doComplete(document, document.positionAt(offset), HOSTS), `${JSON.stringify(text)} at ${offset}`);
        }
      }
    });

    it('offers the nearest and best-matching jobs of a large workflow, and says the list is incomplete', () => {
      const jobs = Array.from({ length: 2000 }, (_, i) => `  job${i}:\n    needs: [${i > 0 ? `job${i - 1}` : ''}]\n    run: python step.py --i ${i}\n`).join('');
      const document = new SpecDocument('file:///w/big.drover.yaml', 1, `jobs:\n${jobs}  last:\n    needs: [job1, ]\n    `);
      const keysList = doComplete(document, document.positionAt(document.text.length));
      assert.ok(keysList.items.some((item) => item.label === 'run'));
      assert.equal(keysList.isIncomplete, false);

      const needs = doComplete(document, document.positionAt(document.text.lastIndexOf(']')));
      assert.equal(needs.isIncomplete, true);
      assert.equal(needs.items.length, MAX_JOB_ITEMS);
      // Nothing typed yet: the jobs written just above come first; `job1` is listed already.
      assert.deepEqual(needs.items.slice(0, 3).map((item) => item.label), ['job1999', 'job1998', 'job1997']);
      assert.ok(!needs.items.some((item) => item.label === 'job1' || item.label === 'last'));

      // As the word grows, the editor asks again: only jobs that hold its letters in order, those that start with it first.
      const typed = document.text.replace('[job1, ]', '[job1, job12]');
      const narrowed = new SpecDocument('file:///w/big.drover.yaml', 2, typed);
      const matches = doComplete(narrowed, narrowed.positionAt(typed.lastIndexOf(']')));
      assert.equal(matches.isIncomplete, true);
      assert.equal(matches.items.length, MAX_JOB_ITEMS);
      assert.ok(matches.items.every((item) => /j.*o.*b.*1.*2/.test(item.label)), matches.items.map((item) => item.label).join());
      assert.ok(matches.items.slice(0, 50).every((item) => item.label.startsWith('job12')));
      const exact = doComplete(narrowed, narrowed.positionAt(typed.lastIndexOf(']')));
      assert.ok(exact.items.some((item) => item.label === 'job12'));
      // Few enough matches: all of them, and the list is complete.
      const few = typed.replace('[job1, job12]', '[job1, job199]');
      const fewDocument = new SpecDocument('file:///w/big.drover.yaml', 3, few);
      const fewItems = doComplete(fewDocument, fewDocument.positionAt(few.lastIndexOf(']')));
      assert.equal(fewItems.isIncomplete, true);
      const expected = Array.from({ length: 2000 }, (_, i) => `job${i}`).filter((name) => /j.*o.*b.*1.*9.*9/.test(name) && name !== 'job1');
      assert.ok(expected.length < MAX_JOB_ITEMS && expected.includes('job199') && expected.includes('job1909'));
      assert.deepEqual(fewItems.items.map((item) => item.label).sort(), expected.sort());
    });
  });
});
