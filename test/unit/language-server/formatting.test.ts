import assert from 'node:assert/strict';
import type { FormattingOptions } from 'vscode-languageserver';
import { formatDocument } from '../../../language-server/src/service/formatting';
import { SpecDocument } from '../../../language-server/src/service/spec-document';
import { lines } from '../../support/marked';

const URI = 'file:///ws/spec.drover.yaml';
const TWO: FormattingOptions = { tabSize: 2, insertSpaces: true };

/** Formats `text` and applies the edit; the text itself when there is none. */
function format(text: string, options = TWO): string {
  const document = new SpecDocument(URI, 1, text);
  const edits = formatDocument(document, options);
  assert.ok(edits.length <= 1, 'one edit for the whole document');
  if (edits.length === 0) return text;
  assert.deepEqual(edits[0]!.range, { start: { line: 0, character: 0 }, end: document.positionAt(text.length) });
  return edits[0]!.newText;
}

const UNEVEN = lines(
  '# nightly: featurize -> train',
  'name: nightly',
  'schedule: "0 2 * * *"   # every night',
  'jobs:',
  '    featurize:',
  '        run: python3 featurize.py --out ${{ params.out }}',
  '        resources: { cpus: 1, memory: 256MiB }',
  '',
  '    # training, on a GPU',
  '    train:',
  '          needs:',
  '          - featurize',
  '          run: |',
  '              python3 train.py \\',
  '                --lr 1.0e-4',
  '          env: {SEED: 0x1F, FLAG: yes, EMPTY: \'\'}',
  '          sweep:',
  '                parameters:',
  '                      lr: [1.0e-4,  3e-4]',
);

describe('language server: formatting', () => {
  it('re-indents with the tab size, keeping comments, blank lines, quoting and every scalar as written', () => {
    assert.equal(
      format(UNEVEN),
      lines(
        '# nightly: featurize -> train',
        'name: nightly',
        'schedule: "0 2 * * *" # every night',
        'jobs:',
        '  featurize:',
        '    run: python3 featurize.py --out ${{ params.out }}',
        '    resources: { cpus: 1, memory: 256MiB }',
        '',
        '  # training, on a GPU',
        '  train:',
        '    needs:',
        '      - featurize',
        '    run: |',
        '      python3 train.py \\',
        '        --lr 1.0e-4',
        "    env: {SEED: 0x1F, FLAG: yes, EMPTY: ''}",
        '    sweep:',
        '      parameters:',
        '        lr: [1.0e-4, 3e-4]',
      ),
    );
  });

  it('uses four spaces when asked, and changes nothing the second time', () => {
    const four = format(UNEVEN, { tabSize: 4, insertSpaces: true });
    assert.ok(four.includes('\n    featurize:\n        run: python3 featurize.py'), four);
    assert.ok(four.includes('\n        needs:\n            - featurize\n'), four);
    assert.equal(format(four, { tabSize: 4, insertSpaces: true }), four);
    const document = new SpecDocument(URI, 1, format(UNEVEN));
    assert.deepEqual(formatDocument(document, TWO), []);
  });

  it('keeps long commands on one line', () => {
    const long = `name: x\nrun: python3 train.py ${'--flag value '.repeat(20).trim()}\n`;
    assert.equal(format(long), long);
  });

  it('keeps CRLF line breaks and a missing final newline', () => {
    assert.equal(format('name: x\r\nsweep:\r\n    method: grid\r\n'), 'name: x\r\nsweep:\r\n  method: grid\r\n');
    assert.equal(format('name: x\nsweep:\n    method: grid'), 'name: x\nsweep:\n  method: grid');
    assert.equal(format('name: x\nsweep:\n    method: grid', { ...TWO, insertFinalNewline: true }), 'name: x\nsweep:\n  method: grid\n');
  });

  it('leaves broken YAML and empty documents alone', () => {
    for (const text of [
      'jobs:\n    a: { run: x\n    b: [1, 2\n',
      'name: x\nrun: "never closed\n',
      'name: x\n\trun: tab-indented\n',
      'a: 1\n  b: 2\n',
      'a: 1\n---\nb: 2\n',
      '',
      '   \n',
    ]) {
      assert.deepEqual(formatDocument(new SpecDocument(URI, 1, text), TWO), [], JSON.stringify(text));
    }
  });
});
