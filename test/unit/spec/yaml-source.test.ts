import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parseStrict, parseTolerant, parseYamlSource, type SpecNode } from '../../../common/spec';

/** The tree with each node's source text next to its value, so differences read clearly. */
function describeTree(node: SpecNode | null, text: string): unknown {
  if (!node) return null;
  const source = text.slice(node.range.start, node.range.end);
  if (node.kind === 'scalar') return { value: node.value, source };
  if (node.kind === 'seq') return { source, items: node.items.map((item) => describeTree(item, text)) };
  return { source, entries: node.entries.map((entry) => [entry.key, text.slice(entry.keyRange.start, entry.keyRange.end), describeTree(entry.value, text)]) };
}

const scalar = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('16GB', 'python train.py --lr ${{ params.lr }}', 'a: b', '#x', '- y', 'multi\nline'),
);
const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,8}$/);
const { value: yamlValue } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, scalar, tie('list'), tie('map')),
  list: fc.array(tie('value'), { maxLength: 4 }),
  map: fc.dictionary(key, tie('value'), { maxKeys: 5 }),
}));

describe('YAML source trees', () => {
  it('are the same from the fast and the tolerant parser, ranges included, for any well-formed document', () => {
    fc.assert(
      fc.property(
        fc.dictionary(key, yamlValue, { minKeys: 1, maxKeys: 6 }),
        fc.constantFrom('block', 'flow', 'mixed'),
        (document, style) => {
          const text = stringify(document, { collectionStyle: style === 'mixed' ? 'any' : style, flowCollectionPadding: style === 'mixed' });
          assert.deepEqual(describeTree(parseStrict(text), text), describeTree(parseTolerant(text).root, text), text);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('agree on hand-written documents with comments, block scalars and empty values', () => {
    const text = [
      '# a spec',
      'name: x   # trailing comment',
      'run: |',
      '  python train.py \\',
      '    --lr 0.1',
      '',
      'env:',
      '  A: "quoted"',
      "  B: 'single'",
      '  C:',
      'list:',
      '  - a',
      '  - { b: 1, c: [1, 2] }',
      '  -   spaced',
      '',
    ].join('\n');
    assert.deepEqual(describeTree(parseStrict(text), text), describeTree(parseTolerant(text).root, text));
  });

  it('falls back to the tolerant parser on errors, keeping what it can', () => {
    const text = 'name: a\nrun: [python\nretries: 2\n';
    const source = parseYamlSource(text);
    assert.ok(source.syntaxDiagnostics.length > 0);
    assert.equal(source.root?.kind, 'map');
  });

  it('sends duplicate keys and aliases to the tolerant parser, which keeps every entry', () => {
    for (const text of ['a: 1\na: 2\n', 'base: &b { x: 1 }\nother: *b\n']) {
      const source = parseYamlSource(text);
      assert.deepEqual(describeTree(source.root, text), describeTree(parseTolerant(text).root, text));
    }
  });
});
