import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { analyzeSpec, expandSpec, hasErrors, LineIndex } from '../../../common/spec';

const EXAMPLES = join(__dirname, '../../../../examples');
const seeds = ['train.drover.yaml', 'nightly.drover.yaml', 'gpu-sweep.drover.yaml'].map((file) => readFileSync(join(EXAMPLES, file), 'utf8'));

/** Every diagnostic lies inside the document; analysis never throws. */
function checkAnalysis(text: string): void {
  const analysis = analyzeSpec(text, 'fuzz.drover.yaml');
  for (const diagnostic of analysis.diagnostics) {
    assert.ok(diagnostic.range.start >= 0 && diagnostic.range.start <= diagnostic.range.end && diagnostic.range.end <= text.length, `${JSON.stringify(diagnostic)} outside ${text.length} chars`);
    assert.ok(diagnostic.message.length > 0);
  }
  // A spec without errors expands, or refuses with an ExpansionError, never anything else.
  if (analysis.model && !hasErrors(analysis.diagnostics)) expandSpec(analysis.model);
}

/** Edits that turn a good spec into the kind of text an editor holds mid-typing. */
const edit = fc.oneof(
  fc.record({ at: fc.nat(), remove: fc.nat({ max: 12 }), insert: fc.constantFrom('', ':', ' ', '\n', '  ', '- ', '[', ']', '{', '}', '"', "'", '${{', '}}', '#', '&a ', '*a', '!!str ', '? ', 'x') }),
);

describe('robustness', () => {
  it('never throws and keeps ranges inside the document, on arbitrary text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), checkAnalysis), { numRuns: 500 });
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom('a', ':', ' ', '\n', '-', '[', ']', '{', '}', '$', '#', '"', '1') , maxLength: 120 }), checkAnalysis), { numRuns: 500 });
  });

  it('never throws on real specs mangled by random edits', () => {
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(edit, { minLength: 1, maxLength: 6 }), (seed, edits) => {
        let text = seed;
        for (const { at, remove, insert } of edits) {
          const position = at % (text.length + 1);
          text = text.slice(0, position) + insert + text.slice(position + remove);
        }
        checkAnalysis(text);
      }),
      { numRuns: 400 },
    );
  });

  it('maps offsets to positions and back', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', '\n', 'é', ' '), maxLength: 80 }), fc.nat(), (text, raw) => {
        const index = new LineIndex(text);
        const offset = raw % (text.length + 1);
        assert.equal(index.offset(index.position(offset)), offset);
      }),
    );
  });
});
