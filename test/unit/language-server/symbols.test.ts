import assert from 'node:assert/strict';
import { FoldingRangeKind, SymbolKind, type DocumentSymbol, type FoldingRange } from 'vscode-languageserver';
import { SpecDocument } from '../../../language-server/src/service/spec-document';
import { documentSymbols, foldingRanges } from '../../../language-server/src/service/symbols';
import { lines, marked } from '../../support/marked';

const URI = 'file:///ws/spec.drover.yaml';

interface Outline {
  name: string;
  kind: SymbolKind;
  detail?: string;
  /** The text the symbol covers and its name's text. */
  range: string;
  selection: string;
  children?: Outline[];
}

function outline(document: SpecDocument, symbols: DocumentSymbol[]): Outline[] {
  const slice = (range: DocumentSymbol['range']) => document.text.slice(document.offsetAt(range.start), document.offsetAt(range.end));
  return symbols.map((symbol) => {
    const result: Outline = { name: symbol.name, kind: symbol.kind, range: slice(symbol.range), selection: slice(symbol.selectionRange) };
    if (symbol.detail !== undefined) result.detail = symbol.detail;
    if (symbol.children?.length) result.children = outline(document, symbol.children);
    return result;
  });
}

describe('language server: symbols', () => {
  describe('document symbols', () => {
    it('outlines a job spec: the job with its resources, sweep and schedule', () => {
      const text = lines(
        '# a comment before',
        'name: lr-sweep',
        'run: python3 train.py --lr ${{ params.lr }} --seed ${{ params.seed }}',
        'resources: { gpus: 1, cpus: 4, memory: 16GB }',
        'schedule: "0 2 * * *"',
        'sweep:',
        '  method: grid',
        '  parameters:',
        '    lr: [0.3, 0.1, 0.03]',
        '    seed: { range: [0, 2] }',
      );
      const document = new SpecDocument(URI, 1, text);
      const sweepText = text.slice(text.indexOf('sweep:')).trimEnd();
      assert.deepEqual(outline(document, documentSymbols(document)), [
        {
          name: 'lr-sweep',
          kind: SymbolKind.Function,
          detail: 'python3 train.py --lr ${{ params.lr }} --seed ${{ params.seed }}',
          range: text.slice(text.indexOf('name:')).trimEnd(),
          selection: 'lr-sweep',
          children: [
            { name: 'resources', kind: SymbolKind.Object, detail: 'gpus: 1, cpus: 4, memory: 16GB', range: 'resources: { gpus: 1, cpus: 4, memory: 16GB }', selection: 'resources' },
            {
              name: 'sweep',
              kind: SymbolKind.Array,
              detail: '6 runs',
              range: sweepText,
              selection: 'sweep',
              children: [
                { name: 'lr', kind: SymbolKind.Variable, detail: '[0.3, 0.1, 0.03]', range: 'lr: [0.3, 0.1, 0.03]', selection: 'lr' },
                { name: 'seed', kind: SymbolKind.Variable, detail: '{ range: [0, 2] }', range: 'seed: { range: [0, 2] }', selection: 'seed' },
              ],
            },
            { name: 'schedule', kind: SymbolKind.Event, detail: '0 2 * * *', range: 'schedule: "0 2 * * *"', selection: 'schedule' },
          ],
        },
      ]);
    });

    it('outlines a workflow: a child per job, with its needs or command', () => {
      const text = lines(
        'name: nightly',
        'schedule: "0 2 * * *"',
        'jobs:',
        '  featurize:',
        '    run: |',
        '      python3 featurize.py',
        '      echo done',
        '    resources: { cpus: 8 }',
        '  train:',
        '    needs: [featurize]',
        '    run: python3 train.py --lr ${{ params.lr }}',
        '    sweep: { method: random, samples: 1, parameters: { lr: { loguniform: [0.001, 0.1] } } }',
        '  evaluate: { needs: [train, featurize], notebook: eval.ipynb }',
      );
      const document = new SpecDocument(URI, 1, text);
      const between = (from: string, to: string) => text.slice(text.indexOf(from), text.indexOf(to)).trimEnd();
      assert.deepEqual(outline(document, documentSymbols(document)), [
        {
          name: 'nightly',
          kind: SymbolKind.Class,
          detail: '0 2 * * *',
          range: text.trimEnd(),
          selection: 'nightly',
          children: [
            {
              name: 'featurize',
              kind: SymbolKind.Function,
              detail: 'python3 featurize.py',
              range: between('featurize:', '  train:'),
              selection: 'featurize',
              children: [{ name: 'resources', kind: SymbolKind.Object, detail: 'cpus: 8', range: 'resources: { cpus: 8 }', selection: 'resources' }],
            },
            {
              name: 'train',
              kind: SymbolKind.Function,
              detail: 'needs featurize',
              range: between('train:', '  evaluate:'),
              selection: 'train',
              children: [
                {
                  name: 'sweep',
                  kind: SymbolKind.Array,
                  detail: '1 run',
                  range: 'sweep: { method: random, samples: 1, parameters: { lr: { loguniform: [0.001, 0.1] } } }',
                  selection: 'sweep',
                  children: [{ name: 'lr', kind: SymbolKind.Variable, detail: '{ loguniform: [0.001, 0.1] }', range: 'lr: { loguniform: [0.001, 0.1] }', selection: 'lr' }],
                },
              ],
            },
            { name: 'evaluate', kind: SymbolKind.Function, detail: 'needs train, featurize', range: 'evaluate: { needs: [train, featurize], notebook: eval.ipynb }', selection: 'evaluate' },
          ],
        },
      ]);
    });

    it('names a nameless workflow after its file and points at `jobs`', () => {
      const { text, ranges } = marked(lines('⟪jobs⟫:', '  a: { notebook: a.ipynb }'));
      const document = new SpecDocument('file:///ws/nightly.drover.yaml', 1, text);
      const [workflow] = documentSymbols(document);
      assert.equal(workflow!.name, 'nightly');
      assert.deepEqual(workflow!.selectionRange, document.rangeOf(ranges[0]!));
      assert.equal(workflow!.detail, undefined);
      assert.deepEqual(workflow!.children!.map((job) => [job.name, job.detail]), [['a', 'a.ipynb']]);
    });

    it('has no outline for what is not a spec mapping', () => {
      for (const text of ['', '- a\n- b\n', 'just text\n']) assert.deepEqual(documentSymbols(new SpecDocument(URI, 1, text)), []);
    });
  });

  describe('folding ranges', () => {
    it('folds multi-line mappings, lists and blocks from their key to their last line, and comment blocks', () => {
      const text = lines(
        '# train.drover.yaml', //          0
        '# two comment lines', //          1
        'name: x', //                      2
        'run: |', //                       3
        '  # not a comment: text',//       4
        '  # of the command', //           5
        '  python train.py', //            6
        'resources: { gpus: 1 }', //       7
        '# a single comment', //           8
        'sweep:', //                       9
        '  parameters:', //               10
        '    lr:', //                     11
        '      - 0.1', //                 12
        '      - 0.2', //                 13
        '    seed: { range: [0, 2] }', // 14
        'placement:', //                  15
        '  hosts: [a,', //                16
        '    b]', //                      17
      );
      const document = new SpecDocument(URI, 1, text);
      const expected: FoldingRange[] = [
        { startLine: 0, endLine: 1, kind: FoldingRangeKind.Comment },
        { startLine: 3, endLine: 6 },
        { startLine: 9, endLine: 14 },
        { startLine: 10, endLine: 14 },
        { startLine: 11, endLine: 13 },
        { startLine: 15, endLine: 17 },
        { startLine: 16, endLine: 17 },
      ];
      assert.deepEqual(foldingRanges(document), expected);
    });

    it('folds the items of a list that span lines from their dash', () => {
      const text = lines('name: x', 'run: y', 'env:', '  LIST:', '    - a: 1', '      b: 2', '    - c');
      // (an invalid spec still folds: folding reads the tree only)
      assert.deepEqual(foldingRanges(new SpecDocument(URI, 1, text)), [
        { startLine: 2, endLine: 6 },
        { startLine: 3, endLine: 6 },
        { startLine: 4, endLine: 5 },
      ]);
    });

    it('folds the jobs of a workflow', () => {
      const text = lines('jobs:', '  a:', '    run: x', '    needs:', '      - b', '      - c', '  b: { run: y }', '  c:', '    run: z');
      assert.deepEqual(foldingRanges(new SpecDocument(URI, 1, text)), [
        { startLine: 0, endLine: 8 },
        { startLine: 1, endLine: 5 },
        { startLine: 3, endLine: 5 },
        { startLine: 7, endLine: 8 },
      ]);
    });
  });
});
