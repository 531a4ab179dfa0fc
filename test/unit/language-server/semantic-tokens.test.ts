import assert from 'node:assert/strict';
import { SEMANTIC_TOKEN_LEGEND, semanticTokens } from '../../../language-server/src/service/semantic-tokens';
import { SpecDocument } from '../../../language-server/src/service/spec-document';
import { lines } from '../../support/marked';

const URI = 'file:///ws/spec.drover.yaml';

/** Decodes LSP's relative encoding into `line:character text type` strings. */
function decode(text: string, data: number[]): string[] {
  assert.equal(data.length % 5, 0);
  const document = new SpecDocument(URI, 1, text);
  const tokens: string[] = [];
  let line = 0;
  let character = 0;
  for (let i = 0; i < data.length; i += 5) {
    const [deltaLine, deltaStart, length, type, modifiers] = data.slice(i, i + 5) as [number, number, number, number, number];
    line += deltaLine;
    character = deltaLine === 0 ? character + deltaStart : deltaStart;
    assert.equal(modifiers, 0);
    const start = document.offsetAt({ line, character });
    tokens.push(`${line}:${character} ${text.slice(start, start + length)} ${SEMANTIC_TOKEN_LEGEND.tokenTypes[type]}`);
  }
  return tokens;
}

describe('language server: semantic tokens', () => {
  it('has a legend of macro, namespace, variable and property', () => {
    assert.deepEqual(SEMANTIC_TOKEN_LEGEND, { tokenTypes: ['macro', 'namespace', 'variable', 'property'], tokenModifiers: [] });
  });

  it('marks the braces, the namespace, the name and the output of every expression, over several lines', () => {
    const text = lines(
      'params: { lr: 0.1 }',
      'env: { RUN: "${{ params.lr }}" }',
      'jobs:',
      '  a:',
      '    run: python a.py --lr ${{params.lr}} --again ${{ params.lr }}',
      '    outputs: { model: m }',
      '  b:',
      '    needs: [a]',
      '    run: |',
      '      python b.py',
      '      cp ${{ jobs.a.outputs.model }} .',
      '# ${{ params.lr }} in a comment is no expression',
    );
    assert.deepEqual(decode(text, semanticTokens(new SpecDocument(URI, 1, text))), [
      '1:13 ${{ macro',
      '1:17 params namespace',
      '1:24 lr variable',
      '1:27 }} macro',
      '4:26 ${{ macro',
      '4:29 params namespace',
      '4:36 lr variable',
      '4:38 }} macro',
      '4:49 ${{ macro',
      '4:53 params namespace',
      '4:60 lr variable',
      '4:63 }} macro',
      '10:9 ${{ macro',
      '10:13 jobs namespace',
      '10:18 a variable',
      '10:20 outputs property',
      '10:28 model property',
      '10:34 }} macro',
    ]);
  });

  it('marks only the braces of what is not a params or jobs path, and nothing in a spec without expressions', () => {
    const text = lines('name: x', 'run: echo ${{ params.lr + 1 }} ${{ secrets.key }}');
    assert.deepEqual(decode(text, semanticTokens(new SpecDocument(URI, 1, text))), ['1:10 ${{ macro', '1:28 }} macro', '1:31 ${{ macro', '1:47 }} macro']);
    assert.deepEqual(semanticTokens(new SpecDocument(URI, 1, 'name: x\nrun: echo hi\n')), []);
    assert.deepEqual(semanticTokens(new SpecDocument(URI, 1, '')), []);
  });
});
