import assert from 'node:assert/strict';
import { analyzeSpec, type DiagnosticCode, type SpecAnalysis, type SpecDiagnostic } from '../../common/spec';
import { marked } from './marked';

export interface Expected {
  code: DiagnosticCode;
  severity?: SpecDiagnostic['severity'];
  /** Words the message must contain. */
  message?: (string | RegExp)[];
  suggestion?: string;
}

/**
 * Analyzes a marked fixture and checks that its diagnostics are exactly the expected ones, in
 * order, each covering its `⟪…⟫` range.
 */
export function expectDiagnostics(source: string, expected: Expected[], fileName = 'test.drover.yaml'): SpecAnalysis {
  const fixture = marked(source);
  const analysis = analyzeSpec(fixture.text, fileName);
  const describe = () => analysis.diagnostics.map((d) => `  ${d.code} ${d.range.start}-${d.range.end} ${fixture.text.slice(d.range.start, d.range.end)}: ${d.message}`).join('\n');
  assert.equal(analysis.diagnostics.length, expected.length, `expected ${expected.length} diagnostics, got:\n${describe()}`);
  assert.equal(fixture.ranges.length, expected.length, 'fixture: one ⟪…⟫ per expected diagnostic');
  expected.forEach((want, index) => {
    const got = analysis.diagnostics[index]!;
    const where = `diagnostic ${index}:\n${describe()}`;
    assert.equal(got.code, want.code, where);
    assert.equal(got.severity, want.severity ?? 'error', where);
    assert.deepEqual(got.range, fixture.ranges[index], `${where}\nexpected range ${JSON.stringify(fixture.ranges[index])}`);
    for (const part of want.message ?? []) {
      if (typeof part === 'string') assert.ok(got.message.includes(part), `${where}\nmessage lacks '${part}'`);
      else assert.match(got.message, part, where);
    }
    if (want.suggestion !== undefined) assert.equal(got.suggestion, want.suggestion, where);
  });
  return analysis;
}

export function expectClean(text: string, fileName = 'test.drover.yaml'): SpecAnalysis {
  const analysis = analyzeSpec(text, fileName);
  assert.deepEqual(analysis.diagnostics.map((d) => `${d.code}: ${d.message}`), []);
  assert.ok(analysis.model, 'a clean spec has a model');
  return analysis;
}
