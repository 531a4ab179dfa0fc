import assert from 'node:assert/strict';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Location, Range, TextEdit, WorkspaceEdit } from 'vscode-languageserver';
import { doRename, findDefinition, findReferences, prepareRename } from '../../../language-server/src/service/navigation';
import { SpecDocument } from '../../../language-server/src/service/spec-document';
import { lines, marked } from '../../support/marked';

const SPEC_PATH = path.resolve('/ws/specs/nightly.drover.yaml');
const URI = pathToFileURL(SPEC_PATH).href;

/** A document from a marked fixture, its (single) cursor and its marked ranges as LSP ranges. */
function fixture(source: string) {
  const { text, ranges, cursors } = marked(source);
  const document = new SpecDocument(URI, 1, text);
  assert.equal(cursors.length, 1, 'fixture: one ‸');
  return { document, text, position: document.positionAt(cursors[0]!), ranges: ranges.map((range) => document.rangeOf(range)) };
}

const here = (ranges: Range[]): Location[] => ranges.map((range) => ({ uri: URI, range }));

function applyEdits(text: string, document: SpecDocument, edits: TextEdit[]): string {
  const offsets = edits.map((edit) => ({ start: document.offsetAt(edit.range.start), end: document.offsetAt(edit.range.end), newText: edit.newText }));
  offsets.sort((a, b) => b.start - a.start);
  let result = text;
  for (const edit of offsets) result = result.slice(0, edit.start) + edit.newText + result.slice(edit.end);
  return result;
}

function renamed(source: string, newName: string): string {
  const { document, text, position } = fixture(source);
  const edit = doRename(document, position, newName);
  assert.ok(!('error' in edit), `rename refused: ${'error' in edit ? edit.error : ''}`);
  return applyEdits(text, document, (edit as WorkspaceEdit).changes![URI]!);
}

describe('language server: navigation', () => {
  describe('go to definition', () => {
    it('goes from a needs entry to the job it names', () => {
      const { document, position, ranges } = fixture(lines(
        'jobs:',
        '  ⟪featurize⟫: { run: python featurize.py }',
        '  train:',
        '    needs: [feat‸urize]',
        '    run: python train.py',
      ));
      assert.deepEqual(findDefinition(document, position), here(ranges));
    });

    it('goes from a block-list needs entry, quoted, to a quoted key', () => {
      const { document, position, ranges } = fixture(lines(
        'jobs:',
        '  "⟪prep⟫": { run: python prep.py }',
        '  train:',
        '    needs:',
        '      - "prep‸"',
        '    run: python train.py',
      ));
      assert.deepEqual(findDefinition(document, position), here(ranges));
    });

    it('goes from jobs.X in an expression to the job, and from the output name to the output', () => {
      const source = (cursorOnJob: boolean) => lines(
        'jobs:',
        `  ${cursorOnJob ? '⟪featurize⟫' : 'featurize'}:`,
        '    run: python featurize.py',
        `    outputs: { ${cursorOnJob ? 'features' : '⟪features⟫'}: the features file }`,
        '  train:',
        '    needs: [featurize]',
        `    run: python train.py --in \${{ jobs.${cursorOnJob ? 'feat‸urize' : 'featurize'}.outputs.${cursorOnJob ? 'features' : 'feat‸ures'} }}`,
      );
      for (const onJob of [true, false]) {
        const { document, position, ranges } = fixture(source(onJob));
        assert.deepEqual(findDefinition(document, position), here(ranges), onJob ? 'on the job' : 'on the output');
      }
    });

    it('goes from params.Z to the job param, the workflow param or the sweep parameter', () => {
      const job = fixture(lines(
        'params: { split: val }',
        'jobs:',
        '  evaluate:',
        '    params: { ⟪split⟫: test }',
        '    run: python eval.py --split ${{ params.sp‸lit }}',
      ));
      assert.deepEqual(findDefinition(job.document, job.position), here(job.ranges));
      const workflow = fixture(lines(
        'params: { ⟪split⟫: val }',
        'jobs:',
        '  evaluate:',
        '    run: python eval.py --split ${{ ‸params.split }}',
      ));
      assert.deepEqual(findDefinition(workflow.document, workflow.position), here(workflow.ranges));
      const swept = fixture(lines(
        'name: sweep',
        'params: { lr: 0.1 }',
        'run: python train.py --lr ${{ params.lr‸ }}',
        'sweep:',
        '  parameters:',
        '    ⟪lr⟫: [0.1, 0.01]',
      ));
      assert.deepEqual(findDefinition(swept.document, swept.position), here(swept.ranges));
    });

    it('finds nothing for an unknown param or job', () => {
      const { document, position } = fixture(lines('name: x', 'run: python train.py --lr ${{ params.l‸rr }}', 'params: { lr: 1 }'));
      assert.deepEqual(findDefinition(document, position), []);
    });

    it("opens the script a run command runs, relative to the spec's folder and workdir", () => {
      const asked: string[] = [];
      const fileExists = (file: string) => {
        asked.push(file);
        return !file.endsWith('missing.py');
      };
      const fileAt = (relative: string) => [{ uri: pathToFileURL(path.resolve('/ws/specs', relative)).href, range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } } }];
      const cases: [string, ReturnType<typeof fileAt> | []][] = [
        ['run: python3 -u tra‸in.py --lr 0.1', fileAt('train.py')],
        ['run: ./scripts/prep‸are.sh', fileAt('scripts/prepare.sh')],
        ['run: "bash run‸.sh"', fileAt('run.sh')],
        ['run: echo hi && python ../tools/ma‸ke.py', fileAt('../tools/make.py')],
        ['run: python train.py --config conf‸.py', []],
        ['run: python -m pkg.ma‸in', []],
        ['run: pyth‸on train.py', []],
        ['run: python missi‸ng.py', []],
      ];
      for (const [run, expected] of cases) {
        const { document, position } = fixture(lines('name: x', run));
        assert.deepEqual(findDefinition(document, position, { fileExists }), expected, run);
      }
      const withWorkdir = fixture(lines('name: x', 'workdir: ../src', 'run: |', '  echo start', '  Rscript fit‸.R'));
      assert.deepEqual(findDefinition(withWorkdir.document, withWorkdir.position, { fileExists }), fileAt('../src/fit.R'));
      assert.ok(asked.includes(path.resolve('/ws/specs/missing.py')));
    });

    it("opens a workflow job's notebook, with the workflow's workdir", () => {
      const { document, position } = fixture(lines('workdir: nb', 'jobs:', '  evaluate:', '    notebook: "ev‸al.ipynb"'));
      const expected = [{ uri: pathToFileURL(path.resolve('/ws/specs/nb/eval.ipynb')).href, range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } } }];
      assert.deepEqual(findDefinition(document, position, { fileExists: () => true }), expected);
      assert.deepEqual(findDefinition(document, position, { fileExists: () => false }), []);
    });
  });

  const WORKFLOW = (cursor: string) => lines(
    'jobs:',
    `  ${cursor === 'key' ? 'feat‸urize' : 'featurize'}:`,
    '    run: python featurize.py',
    '    outputs: { features: f }',
    '  train:',
    `    needs: [${cursor === 'needs' ? 'featurize‸' : 'featurize'}]`,
    `    run: python train.py --in \${{ jobs.${cursor === 'expression' ? '‸featurize' : 'featurize'}.outputs.features }} --x \${{jobs.featurize.outputs.features}}`,
    '  evaluate:',
    '    needs:',
    '      - train',
    '      - featurize',
    '    notebook: eval.ipynb',
  );

  describe('references', () => {
    it('lists the key, every needs entry and every jobs.X segment, from any of them', () => {
      for (const cursor of ['key', 'needs', 'expression']) {
        const { document, text, position } = fixture(WORKFLOW(cursor));
        const found = findReferences(document, position, true).map((location) => {
          assert.equal(location.uri, URI);
          const start = document.offsetAt(location.range.start);
          const end = document.offsetAt(location.range.end);
          return `${document.positionAt(start).line}:${text.slice(start, end)}`;
        });
        assert.deepEqual(found, ['1:featurize', '5:featurize', '6:featurize', '6:featurize', '10:featurize'], cursor);
        assert.equal(findReferences(document, position, false).length, 4, `${cursor}: without the declaration`);
      }
    });

    it('covers only the job segment of an expression', () => {
      const { document, position, ranges } = fixture(lines(
        'jobs:',
        '  a: { run: x, outputs: { o: v } }',
        '  b: { needs: [⟪a⟫], run: "y ${{ jobs.⟪a⟫.outputs.o }}" }',
        '  c: { run: z‸ }',
      ));
      assert.deepEqual(findReferences(document, position, true), []);
      assert.deepEqual(findReferences(document, ranges[1]!.start, false), here(ranges));
    });

    it('has nothing to say about a single-job spec', () => {
      const { document, position } = fixture(lines('name: tr‸ain', 'run: python train.py'));
      assert.deepEqual(findReferences(document, position, true), []);
    });
  });

  describe('rename', () => {
    it('prepares the name under the cursor, and only a job name', () => {
      const { document, position, ranges } = fixture(lines('jobs:', '  a: { run: x }', '  b: { needs: ["⟪a‸⟫"], run: y }'));
      assert.deepEqual(prepareRename(document, position), ranges[0]);
      const elsewhere = fixture(lines('jobs:', '  a: { ru‸n: x }'));
      assert.equal(prepareRename(elsewhere.document, elsewhere.position), null);
      const unknown = fixture(lines('jobs:', '  a: { needs: [zz‸z], run: x }'));
      assert.equal(prepareRename(unknown.document, unknown.position), null);
    });

    it('renames the key, the needs entries and the expressions, from any of them', () => {
      const expected = lines(
        'jobs:',
        '  features:',
        '    run: python featurize.py',
        '    outputs: { features: f }',
        '  train:',
        '    needs: [features]',
        '    run: python train.py --in ${{ jobs.features.outputs.features }} --x ${{jobs.features.outputs.features}}',
        '  evaluate:',
        '    needs:',
        '      - train',
        '      - features',
        '    notebook: eval.ipynb',
      );
      for (const cursor of ['key', 'needs', 'expression']) assert.equal(renamed(WORKFLOW(cursor), 'features'), expected, cursor);
    });

    it('keeps the quotes of quoted names', () => {
      assert.equal(
        renamed(lines('jobs:', '  "a‸": { run: x }', "  b: { needs: ['a'], run: y }"), 'prep'),
        lines('jobs:', '  "prep": { run: x }', "  b: { needs: ['prep'], run: y }"),
      );
    });

    it('refuses invalid and taken names, and places that are not a job', () => {
      const { document, position } = fixture(WORKFLOW('key'));
      assert.match((doRename(document, position, '2fast') as { error: string }).error, /not a valid job name/);
      assert.match((doRename(document, position, 'has space') as { error: string }).error, /not a valid job name/);
      assert.match((doRename(document, position, 'true') as { error: string }).error, /boolean/);
      assert.match((doRename(document, position, 'train') as { error: string }).error, /already has a job named 'train'/);
      const elsewhere = fixture(lines('name: x', 'run: py‸thon train.py'));
      assert.match((doRename(elsewhere.document, elsewhere.position, 'y') as { error: string }).error, /only a workflow job/);
      assert.deepEqual(doRename(document, position, 'featurize'), { changes: { [URI]: [] } });
    });
  });
});
