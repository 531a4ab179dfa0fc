import assert from 'node:assert/strict';
import fc from 'fast-check';
import { analyzeSpec, IncrementalAnalyzer, parseStrict, type SpecAnalysis } from '../../../common/spec';

const FILE = 'flow.drover.yaml';

/** A workflow with most of what a spec can hold: comments between jobs, sweeps, outputs, keys after `jobs`. */
function workflow(jobs: number): string {
  const lines = ['# a generated workflow', 'name: flow', 'params:', '  lr: 0.1', 'jobs:', '  # the first job', '  prepare:', '    run: python prep.py', '    outputs: { data: "the data" }'];
  for (let n = 0; n < jobs; n++) {
    lines.push(`  job${n}:`);
    lines.push(`    needs: [${n === 0 ? 'prepare' : `job${Math.floor(n / 2)}`}]`);
    lines.push(`    run: python step.py --n ${n} --lr \${{ params.lr }}${n % 5 === 0 ? ' --data ${{ jobs.prepare.outputs.data }}' : ''}`);
    if (n % 3 === 0) lines.push('    resources:', `      gpus: ${n % 4}`, '      memory: 4GB');
    if (n % 7 === 0) lines.push('    sweep:', '      parameters:', '        lr: [0.1, 0.01]');
    if (n % 11 === 0) lines.push('', '# between jobs');
  }
  lines.push('env:', '  MODE: test');
  return lines.join('\n') + '\n';
}

function parsesStrictly(text: string): boolean {
  try {
    parseStrict(text);
    return true;
  } catch {
    return false;
  }
}

/** What an analysis says: its tree, its model and its diagnostics. */
function essence(analysis: SpecAnalysis): unknown {
  return { root: analysis.source.root, model: analysis.model, diagnostics: analysis.diagnostics };
}

function assertSameAsWhole(analyzer: IncrementalAnalyzer, text: string): SpecAnalysis {
  const incremental = analyzer.analyze(text);
  assert.deepStrictEqual(essence(incremental), essence(analyzeSpec(text, FILE)), `after editing to:\n${text}`);
  return incremental;
}

const LINES = [
  '    retries: 2\n',
  '  extra:\n    run: echo hi\n',
  '    needs: [job3, job3]\n',
  '    resorces: {}\n',
  '# a comment\n',
  '\n',
  '    run: echo ${{ params.nope }}\n',
  '    resources:\n      gpus: 1\n      gpus: 2\n',
  '  job1:\n    run: echo twice\n',
  '      cpus: 3\n',
];
/** Typing that mostly keeps the YAML well-formed, and some that breaks it (then the text is analysed whole). */
const SAFE_INSERTS = ['', 'x', '1', ' ', 'job2', '  ', '\n', '${{ params.lr }}'];
const RISKY_INSERTS = [':', '-', '[', ']', '#', '${{', '}}', '"'];

type Edit =
  | { kind: 'chars'; at: number; remove: number; insert: string }
  | { kind: 'line'; line: number; insert: string }
  | { kind: 'rename'; job: number; suffix: string }
  | { kind: 'drop-line'; line: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('chars' as const), at: fc.nat(), remove: fc.nat({ max: 3 }), insert: fc.constantFrom(...SAFE_INSERTS) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('chars' as const), at: fc.nat(), remove: fc.nat({ max: 3 }), insert: fc.constantFrom(...RISKY_INSERTS) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('line' as const), line: fc.nat(), insert: fc.constantFrom(...LINES) }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('rename' as const), job: fc.nat({ max: 40 }), suffix: fc.constantFrom('x', '', '_2') }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('drop-line' as const), line: fc.nat() }), weight: 2 },
);

function apply(text: string, change: Edit): string {
  const lineStarts = [0];
  for (let i = text.indexOf('\n'); i >= 0 && i < text.length - 1; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  switch (change.kind) {
    case 'chars': {
      const at = change.at % (text.length + 1);
      return text.slice(0, at) + change.insert + text.slice(at + change.remove);
    }
    case 'line': {
      const at = lineStarts[change.line % lineStarts.length]!;
      return text.slice(0, at) + change.insert + text.slice(at);
    }
    case 'rename':
      return text.replace(new RegExp(`^  job${change.job}:`, 'm'), `  job${change.job}${change.suffix}:`);
    case 'drop-line': {
      const index = change.line % lineStarts.length;
      return text.slice(0, lineStarts[index]) + text.slice(lineStarts[index + 1] ?? text.length);
    }
  }
}

describe('incremental analysis', () => {
  it('gives what a whole analysis gives, version after version, under random edits (seeded)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 45 }), fc.array(edit, { minLength: 1, maxLength: 10 }), (jobs, edits) => {
        const analyzer = new IncrementalAnalyzer(FILE);
        let text = workflow(jobs);
        assertSameAsWhole(analyzer, text);
        for (const change of edits) {
          text = apply(text, change);
          assertSameAsWhole(analyzer, text);
        }
      }),
      { numRuns: 60, seed: 20261202 },
    );
  });

  it('gives what a whole analysis gives under random edits that keep the YAML well-formed, reusing jobs (seeded)', () => {
    // Most random edits above break the YAML, which is then analysed whole; these all go the incremental way.
    let analyses = 0;
    let reusing = 0;
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 45 }), fc.array(edit, { minLength: 1, maxLength: 15 }), (jobs, edits) => {
        const analyzer = new IncrementalAnalyzer(FILE);
        let text = workflow(jobs);
        assertSameAsWhole(analyzer, text);
        for (const change of edits) {
          const next = apply(text, change);
          if (!parsesStrictly(next)) continue;
          text = next;
          assertSameAsWhole(analyzer, text);
          analyses++;
          if (analyzer.reusedJobs > 0) reusing++;
        }
      }),
      { numRuns: 100, seed: 20261203 },
    );
    assert.ok(reusing > analyses * 0.8, `only ${reusing} of ${analyses} analyses reused jobs`);
  });

  it('re-checks only the job an edit touched, and reports its new problems there', () => {
    const analyzer = new IncrementalAnalyzer(FILE);
    let text = workflow(40);
    assertSameAsWhole(analyzer, text);
    text = text.replace('  job20:\n    needs: [job10]\n', '  job20:\n    needs: [job10]\n    retries: many\n');
    const edited = assertSameAsWhole(analyzer, text);
    assert.equal(analyzer.reusedJobs, 40, 'all jobs but job20 (41 in all) are reused');
    const problem = edited.diagnostics.find((diagnostic) => diagnostic.code === 'wrong-type');
    assert.ok(problem, 'the new problem is reported');
    assert.equal(text.slice(problem.range.start, problem.range.end), 'many');
    // Undone: the problem goes, and the job's earlier results come back (its text is the same again).
    text = text.replace('    retries: many\n', '');
    const undone = assertSameAsWhole(analyzer, text);
    assert.ok(!undone.diagnostics.some((diagnostic) => diagnostic.code === 'wrong-type'));
  });

  it('keeps what spans jobs right: a renamed job that others need, a name used twice, moved jobs', () => {
    const analyzer = new IncrementalAnalyzer(FILE);
    let text = workflow(40);
    assertSameAsWhole(analyzer, text);

    // job30 needs job15: renaming job15 breaks that edge, though job30's text did not change.
    text = text.replace('  job15:', '  stage15:');
    let analysis = assertSameAsWhole(analyzer, text);
    assert.ok(analyzer.reusedJobs > 0);
    const broken = analysis.diagnostics.filter((diagnostic) => diagnostic.code === 'unknown-job').map((diagnostic) => diagnostic.message);
    assert.deepEqual(broken, [
      "job 'job30' needs 'job15', which is not a job of this workflow; did you mean 'job1'?",
      "job 'job31' needs 'job15', which is not a job of this workflow; did you mean 'job1'?",
    ]);
    text = text.replace('  stage15:', '  job15:');
    analysis = assertSameAsWhole(analyzer, text);
    assert.ok(!analysis.diagnostics.some((diagnostic) => diagnostic.code === 'unknown-job'));

    // A second job named job3: the whole text's parser reports it, as it always did.
    const twice = text.replace('env:\n', '  job3:\n    run: echo again\nenv:\n');
    analysis = assertSameAsWhole(analyzer, twice);
    assert.equal(analyzer.reusedJobs, 0);
    assert.ok(analysis.diagnostics.some((diagnostic) => diagnostic.code === 'duplicate-key'));

    // Lines added above move every later job: their reused ranges move with them.
    text = text.replace('jobs:\n', 'jobs:\n  early:\n    run: echo first\n\n');
    analysis = assertSameAsWhole(analyzer, text);
    assert.equal(analyzer.reusedJobs, 41);
    const job39 = analysis.model!.jobs.find((job) => job.id === 'job39')!;
    assert.equal(text.slice(job39.idRange.start, job39.idRange.end), 'job39');
    assert.equal(text.slice(job39.needs[0]!.range.start, job39.needs[0]!.range.end), 'job19');
  });

  it('analyses texts it cannot split as a whole', () => {
    const analyzer = new IncrementalAnalyzer(FILE);
    for (const text of ['jobs: { a: { run: x }, b: { run: y } }\n', 'name: one\nrun: python x.py\n', 'jobs:\n  a: &x\n    run: x\n  b: *x\n', 'jobs:\n  a:\n    needs: [b\n  b:\n    run: y\n', '---\njobs:\n  a:\n    run: x\n']) {
      assertSameAsWhole(analyzer, text);
      assert.equal(analyzer.reusedJobs, 0);
    }
  });
});
