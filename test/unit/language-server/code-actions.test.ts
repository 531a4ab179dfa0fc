import assert from 'node:assert/strict';
import { CodeActionKind, type CodeAction, type Diagnostic, type Range, type TextEdit } from 'vscode-languageserver';
import { doValidation } from '../../../language-server/src/service';
import { codeActions } from '../../../language-server/src/service/code-actions';
import { SpecDocument } from '../../../language-server/src/service/spec-document';
import { lines, marked } from '../../support/marked';

const URI = 'file:///ws/spec.drover.yaml';

function applyEdits(document: SpecDocument, edits: TextEdit[]): string {
  const offsets = edits.map((edit) => ({ start: document.offsetAt(edit.range.start), end: document.offsetAt(edit.range.end), newText: edit.newText }));
  offsets.sort((a, b) => b.start - a.start);
  let result = document.text;
  for (const edit of offsets) result = result.slice(0, edit.start) + edit.newText + result.slice(edit.end);
  return result;
}

/** The document, its diagnostics (as the server publishes them) and the range at the fixture's cursor or marked range. */
function setup(source: string) {
  const { text, ranges, cursors } = marked(source);
  const document = new SpecDocument(URI, 1, text);
  const diagnostics = doValidation(text, URI);
  const at = ranges[0] ?? { start: cursors[0] ?? 0, end: cursors[0] ?? 0 };
  const range: Range = document.rangeOf(at);
  return { document, diagnostics, range };
}

/** The diagnostics the editor would send for a range: those that touch it. */
function touching(diagnostics: Diagnostic[], document: SpecDocument, range: Range): Diagnostic[] {
  const start = document.offsetAt(range.start);
  const end = document.offsetAt(range.end);
  return diagnostics.filter((diagnostic) => document.offsetAt(diagnostic.range.start) <= end && document.offsetAt(diagnostic.range.end) >= start);
}

function actionsAt(source: string): { document: SpecDocument; actions: CodeAction[]; diagnostics: Diagnostic[] } {
  const { document, diagnostics, range } = setup(source);
  return { document, diagnostics, actions: codeActions(document, range, touching(diagnostics, document, range)) };
}

function applied(document: SpecDocument, action: CodeAction): string {
  const changes = action.edit!.changes!;
  assert.deepEqual(Object.keys(changes), [URI]);
  return applyEdits(document, changes[URI]!);
}

/** Applies the one action titled `title` and checks the result is free of diagnostics of `code`. */
function fix(source: string, title: string): string {
  const { document, actions } = actionsAt(source);
  const action = actions.find((candidate) => candidate.title === title);
  assert.ok(action, `no action '${title}'; got ${JSON.stringify(actions.map((candidate) => candidate.title))}`);
  return applied(document, action);
}

describe('language server: code actions', () => {
  describe('did-you-mean fixes', () => {
    it('renames an unknown key to the known one, as the preferred fix', () => {
      const { document, actions } = actionsAt(lines('name: x', 'run: python train.py', '⟪retrys⟫: 2'));
      assert.equal(actions.length, 1);
      const [action] = actions;
      assert.equal(action!.title, "Change to 'retries'");
      assert.equal(action!.kind, CodeActionKind.QuickFix);
      assert.equal(action!.isPreferred, true);
      assert.equal(action!.diagnostics![0]!.code, 'unknown-key');
      const fixed = applied(document, action!);
      assert.equal(fixed, lines('name: x', 'run: python train.py', 'retries: 2'));
      assert.deepEqual(doValidation(fixed, URI), []);
    });

    it('fixes an enum typo, a quoted one too', () => {
      const spec = (method: string) => lines('name: x', 'run: python train.py --lr ${{ params.lr }}', 'sweep:', `  method: ${method}`, '  parameters: { lr: [1, 2] }');
      assert.equal(fix(spec('⟪grdi⟫'), "Change to 'grid'"), spec('grid'));
      assert.equal(fix(spec('"rand‸om1"'), "Change to 'random'"), spec('random'));
    });

    it('fixes an unknown job in needs, flow and block lists', () => {
      const flow = (name: string) => lines('jobs:', '  train: { run: python train.py }', `  evaluate: { needs: [${name}], run: python eval.py }`);
      assert.equal(fix(flow('tr‸ian'), "Change to 'train'"), flow('train'));
      const block = (name: string) => lines('jobs:', '  train: { run: python train.py }', '  evaluate:', '    needs:', `      - ${name}`, '    run: python eval.py');
      assert.equal(fix(block("'‸trian'"), "Change to 'train'"), block('train'));
    });

    it('fixes an unknown param in an expression', () => {
      const spec = (path: string) => lines('name: x', 'params: { lr: 0.1 }', `run: python train.py --lr \${{ ${path} }}`);
      const fixed = fix(spec('params.l‸rr'), "Change to 'params.lr'");
      assert.equal(fixed, spec('params.lr'));
      assert.deepEqual(doValidation(fixed, URI), []);
    });

    it('offers nothing for a diagnostic without a suggestion', () => {
      const { actions, diagnostics } = actionsAt(lines('name: x', 'run: python train.py', '⟪zzzzzz⟫: 2'));
      assert.equal(diagnostics.length, 1);
      assert.deepEqual(actions, []);
    });
  });

  describe('dependency cycles', () => {
    it('offers to remove each edge of a two-job cycle, flow lists', () => {
      const spec = (aNeeds: string, bNeeds: string) => lines('jobs:', `  a: { needs: [${aNeeds}], run: x }`, `  b: { needs: [${bNeeds}], run: y }`);
      const { document, actions, diagnostics } = actionsAt(spec('b', 'c, ‸a') .replace('  b:', '  c: { run: z }\n  b:'));
      assert.deepEqual(diagnostics.map((diagnostic) => diagnostic.code), ['dependency-cycle']);
      assert.deepEqual(actions.map((action) => [action.title, action.kind]), [
        ["Remove 'b' from the needs of 'a'", CodeActionKind.QuickFix],
        ["Remove 'a' from the needs of 'b'", CodeActionKind.QuickFix],
      ]);
      const [removeB, removeA] = actions.map((action) => applied(document, action));
      assert.equal(removeB, lines('jobs:', '  a: { needs: [], run: x }', '  c: { run: z }', '  b: { needs: [c, a], run: y }'));
      assert.equal(removeA, lines('jobs:', '  a: { needs: [b], run: x }', '  c: { run: z }', '  b: { needs: [c], run: y }'));
      for (const fixed of [removeB, removeA]) assert.deepEqual(doValidation(fixed, URI), []);
    });

    it('edits block lists: a middle item goes with its line, an only item leaves []', () => {
      const source = lines(
        'jobs:',
        '  a:',
        '    needs:',
        '      - c',
        '    run: x',
        '  b:',
        '    needs:',
        '      - ‸a',
        '      - d',
        '    run: y',
        '  c:',
        '    needs: [b]',
        '    run: z',
        '  d: { run: w }',
      );
      const { document, actions } = actionsAt(source);
      assert.deepEqual(actions.map((action) => action.title), ["Remove 'c' from the needs of 'a'", "Remove 'b' from the needs of 'c'", "Remove 'a' from the needs of 'b'"]);
      const results = actions.map((action) => applied(document, action));
      const text = document.text;
      assert.equal(results[0], text.replace('    needs:\n      - c\n', '    needs: []\n'));
      assert.equal(results[1], text.replace('needs: [b]', 'needs: []'));
      assert.equal(results[2], text.replace('      - a\n', ''));
      for (const fixed of results) assert.deepEqual(doValidation(fixed, URI).map((diagnostic) => diagnostic.code), []);
    });

    it('finds the cycle through the model for a cycle diagnostic the analysis placed elsewhere', () => {
      // A diagnostic from an older analysis, on another edge of the same cycle: the way back is searched for.
      const { text, ranges } = marked(lines('jobs:', '  a: { needs: [⟪c⟫], run: x }', '  b: { needs: [a], run: y }', '  c: { needs: [b], run: z }'));
      const document = new SpecDocument(URI, 1, text);
      const diagnostic: Diagnostic = { range: document.rangeOf(ranges[0]!), message: 'dependency cycle', code: 'dependency-cycle' };
      const actions = codeActions(document, diagnostic.range, [diagnostic]);
      assert.deepEqual(actions.map((action) => action.title), ["Remove 'c' from the needs of 'a'", "Remove 'b' from the needs of 'c'", "Remove 'a' from the needs of 'b'"]);
      assert.equal(applied(document, actions[1]!), text.replace('needs: [b]', 'needs: []'));
    });

    it('removes a self-need, the last item of a flow list', () => {
      const { document, actions } = actionsAt(lines('jobs:', '  a: { run: x }', '  b: { needs: [a, ‸b], run: y }'));
      assert.deepEqual(actions.map((action) => action.title), ["Remove 'b' from the needs of 'b'"]);
      assert.equal(applied(document, actions[0]!), lines('jobs:', '  a: { run: x }', '  b: { needs: [a], run: y }'));
    });
  });

  describe('add resources', () => {
    it('adds a resources line at the job indentation, after its last entry', () => {
      const source = lines('jobs:', '  tr‸ain:', '    run: python train.py', '    timeout: 2h   # long', '  evaluate: { run: python eval.py }');
      const { document, actions } = actionsAt(source);
      assert.deepEqual(actions.map((action) => [action.title, action.kind]), [['Add resources', CodeActionKind.RefactorRewrite]]);
      const result = applied(document, actions[0]!);
      assert.equal(result, document.text.replace('# long\n', '# long\n    resources: { gpus: 1, cpus: 4, memory: 16GB }\n'));
      assert.deepEqual(doValidation(result, URI), []);
    });

    it('adds to a flow mapping, after a block scalar and to a single-job spec', () => {
      const flow = lines('jobs:', '  ‸evaluate: { run: python eval.py }');
      assert.equal(fix(flow, 'Add resources'), lines('jobs:', '  evaluate: { run: python eval.py, resources: { gpus: 1, cpus: 4, memory: 16GB } }'));
      const block = lines('jobs:', '  ‸a:', '      run: |', '        python a.py', '        echo done', '  b: { run: y }');
      assert.equal(fix(block, 'Add resources'), marked(block).text.replace('done\n', 'done\n      resources: { gpus: 1, cpus: 4, memory: 16GB }\n'));
      const single = 'name: tr‸ain\nrun: python train.py';
      assert.equal(fix(single, 'Add resources'), 'name: train\nrun: python train.py\nresources: { gpus: 1, cpus: 4, memory: 16GB }');
      assert.equal(fix('na‸me: train\nrun: x\n', 'Add resources'), 'name: train\nrun: x\nresources: { gpus: 1, cpus: 4, memory: 16GB }\n');
    });

    it('is not offered off a job key or for a job that has resources', () => {
      assert.deepEqual(actionsAt(lines('jobs:', '  a:', '    ru‸n: x')).actions, []);
      assert.deepEqual(actionsAt(lines('jobs:', '  a‸: { run: x, resources: { cpus: 1 } }')).actions, []);
      assert.deepEqual(actionsAt(lines('name: a‸', 'run: x', 'resources: { cpus: 1 }')).actions, []);
    });
  });
});
