import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  LineSplitter,
  MetricLineReader,
  parseMetricJson,
  parseMetricLine,
  TRUNCATION_MARK,
  type MetricPoint,
} from '../../../runner/src/metrics/metric-lines';

/** The line's points as {name: value}, with the step they share; null when not a metric line. */
function record(points: MetricPoint[] | null): Record<string, number | null> | null {
  if (points === null) return null;
  assert.ok(points.length > 0, 'a parsed record is never empty');
  const result: Record<string, number | null> = { step: points[0].step };
  for (const point of points) {
    assert.equal(point.step, points[0].step, 'points of one line share its step');
    result[point.name] = point.value;
  }
  return result;
}

/** Feeds `chunks` to a fresh splitter and returns every line, the flushed ones included. */
function splitAll(chunks: (string | Buffer)[], splitter = new LineSplitter()): string[] {
  const lines = chunks.flatMap((chunk) => splitter.feed(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
  return [...lines, ...splitter.flush()];
}

describe('parseMetricLine', () => {
  it('reads the documented form, in order, with the step applied to every point', () => {
    assert.deepEqual(parseMetricLine('::metric step=100 loss=0.23 acc=0.9'), [
      { step: 100, name: 'loss', value: 0.23 },
      { step: 100, name: 'acc', value: 0.9 },
    ]);
  });

  it('reads what train.py prints', () => {
    assert.deepEqual(record(parseMetricLine('::metric step=60 val_loss=0.312456 val_acc=0.8725')), { step: 60, val_loss: 0.312456, val_acc: 0.8725 });
    assert.deepEqual(record(parseMetricLine('::metric step=10 loss=1e-05 acc=1')), { step: 10, loss: 1e-5, acc: 1 });
  });

  it('takes the step anywhere in the line, and no step as null', () => {
    assert.deepEqual(record(parseMetricLine('::metric loss=1 step=7')), { step: 7, loss: 1 });
    assert.deepEqual(parseMetricLine('::metric lr=0.1'), [{ step: null, name: 'lr', value: 0.1 }]);
  });

  it('accepts every plain decimal form of a finite number', () => {
    const cases: [string, number][] = [
      ['3', 3], ['-0.5', -0.5], ['+2', 2], ['.5', 0.5], ['5.', 5], ['1e-3', 1e-3], ['2.5E+10', 2.5e10], ['007', 7], ['-0', -0],
    ];
    for (const [text, value] of cases) {
      assert.deepEqual(parseMetricLine(`::metric x=${text}`), [{ step: null, name: 'x', value }], text);
    }
  });

  it('rejects the whole line for a value that is not a finite decimal number', () => {
    for (const bad of ['nan', 'NaN', 'inf', '-inf', 'Infinity', '0x10', '1_000', '', '1e', 'e5', '.', '1.2.3', '1e999', '-1e999', 'True', '"1"', '1,5']) {
      assert.equal(parseMetricLine(`::metric step=1 good=1 x=${bad}`), null, `x=${bad}`);
    }
  });

  it('accepts names of the documented pattern and rejects others', () => {
    assert.deepEqual(record(parseMetricLine('::metric train/loss=1 lr.group-0=2 _x9=3 A=4')), { step: null, 'train/loss': 1, 'lr.group-0': 2, _x9: 3, A: 4 });
    for (const bad of ['9x', '-x', '/x', 'a:b', 'a+b', 'é', '', 'a$']) {
      assert.equal(parseMetricLine(`::metric ${bad}=1`), null, `name ${JSON.stringify(bad)}`);
    }
  });

  it('needs a non-negative integer step', () => {
    assert.deepEqual(record(parseMetricLine('::metric step=1e3 x=1')), { step: 1000, x: 1 });
    assert.deepEqual(record(parseMetricLine('::metric step=0 x=1')), { step: 0, x: 1 });
    for (const bad of ['1.5', '-1', '1e20', 'one', '']) {
      assert.equal(parseMetricLine(`::metric step=${bad} x=1`), null, `step=${bad}`);
    }
  });

  it('is not a metric line without metric pairs', () => {
    assert.equal(parseMetricLine('::metric'), null);
    assert.equal(parseMetricLine('::metric '), null);
    assert.equal(parseMetricLine('::metric    \t '), null);
    assert.equal(parseMetricLine('::metric step=5'), null);
  });

  it('rejects a line that names a metric (or the step) twice, rather than guess', () => {
    assert.equal(parseMetricLine('::metric step=1 loss=0.5 loss=0.4'), null);
    assert.equal(parseMetricLine('::metric step=1 step=2 loss=0.5'), null);
  });

  it('rejects malformed pairs and ordinary log lines', () => {
    for (const line of [
      '::metric loss', '::metric loss=1 junk', '::metric =1', '::metric a=1=2', '::metric a = 1', '::metric a=1;b=2',
      '::metrics a=1', '::metricx a=1', ':metric a=1', 'metric a=1', 'epoch 3 ::metric a=1', '', '   ', 'loss=0.5',
      '::METRIC a=1',
    ]) {
      assert.equal(parseMetricLine(line), null, JSON.stringify(line));
    }
  });

  it('allows leading and trailing whitespace, tabs and runs of spaces', () => {
    const expected = { step: 2, a: 1, b: 2 };
    assert.deepEqual(record(parseMetricLine('   ::metric step=2 a=1 b=2')), expected);
    assert.deepEqual(record(parseMetricLine('\t::metric\tstep=2\ta=1  b=2 \r')), expected);
    assert.deepEqual(record(parseMetricLine('::metric step=2 a=1 b=2   ')), expected);
  });

  it('reads a line with many metrics', () => {
    const pairs = Array.from({ length: 5000 }, (_, i) => `layer${i}/grad_norm=${i / 7}`);
    const points = parseMetricLine(`::metric step=9 ${pairs.join(' ')}`);
    assert.equal(points?.length, 5000);
    assert.deepEqual(points?.[4999], { step: 9, name: 'layer4999/grad_norm', value: 4999 / 7 });
  });
});

describe('parseMetricJson', () => {
  it('reads a record with step and time (seconds, given as ms in `at`)', () => {
    assert.deepEqual(parseMetricJson('{"step": 3, "loss": 0.2, "time": 1700000000.5}'), [{ step: 3, name: 'loss', value: 0.2, at: 1700000000500 }]);
  });

  it('reads what train.py appends, without a time', () => {
    assert.deepEqual(parseMetricJson('{"step": 10, "loss": 0.52, "acc": 0.78}'), [
      { step: 10, name: 'loss', value: 0.52 },
      { step: 10, name: 'acc', value: 0.78 },
    ]);
  });

  it('takes a missing or null step as null', () => {
    assert.deepEqual(parseMetricJson('{"lr": 0.1}'), [{ step: null, name: 'lr', value: 0.1 }]);
    assert.deepEqual(parseMetricJson('{"step": null, "lr": 0.1}'), [{ step: null, name: 'lr', value: 0.1 }]);
  });

  it('rejects a record with a step that is not a non-negative integer', () => {
    for (const step of ['1.5', '-1', '"3"', 'true', '[1]']) {
      assert.equal(parseMetricJson(`{"step": ${step}, "loss": 1}`), null, `step ${step}`);
    }
  });

  it('ignores fields that are not finite numbers or not metric names', () => {
    assert.deepEqual(
      parseMetricJson('{"step": 1, "loss": 0.5, "phase": "train", "ok": true, "extra": {"a": 1}, "list": [1], "none": null, "bad name": 3, "9x": 4}'),
      [{ step: 1, name: 'loss', value: 0.5 }],
    );
  });

  it('ignores a time that is not a finite number, and never makes it a metric', () => {
    assert.deepEqual(parseMetricJson('{"step": 1, "loss": 0.5, "time": "yesterday"}'), [{ step: 1, name: 'loss', value: 0.5 }]);
    assert.equal(parseMetricJson('{"step": 1, "time": 1700000000}'), null);
  });

  it("keeps a record with Python's NaN/Infinity, dropping only those fields", () => {
    assert.deepEqual(record(parseMetricJson('{"step": 4, "loss": NaN, "acc": 0.5, "g": Infinity, "h": -Infinity}')), { step: 4, acc: 0.5 });
    // The words inside strings are left alone.
    assert.deepEqual(record(parseMetricJson('{"note": "NaN \\" Infinity", "loss": NaN, "acc": 1}')), { step: null, acc: 1 });
  });

  it('takes the last of duplicate keys, as JSON.parse does', () => {
    assert.deepEqual(parseMetricJson('{"loss": 1, "loss": 2}'), [{ step: null, name: 'loss', value: 2 }]);
  });

  it('is null for bad JSON, non-objects, blank lines and records without metrics', () => {
    for (const line of ['', '   ', '{', '{"loss": 0.5', '[1, 2]', '"text"', '42', 'null', '{}', '{"step": 3}', '::metric a=1', '{loss: 1}', '{"a": 1} trailing']) {
      assert.equal(parseMetricJson(line), null, JSON.stringify(line));
    }
  });

  it('tolerates surrounding whitespace and a CR', () => {
    assert.deepEqual(parseMetricJson('  {"a": 1}\r'), [{ step: null, name: 'a', value: 1 }]);
  });
});

describe('LineSplitter', () => {
  it('splits on LF, CRLF and a lone CR, and keeps blank lines', () => {
    assert.deepEqual(splitAll(['a\nb\r\nc\rd\n\ne']), ['a', 'b', 'c', 'd', '', 'e']);
  });

  it('joins a line split across chunks', () => {
    const splitter = new LineSplitter();
    assert.deepEqual(splitter.feed(Buffer.from('::metric st')), []);
    assert.deepEqual(splitter.feed(Buffer.from('ep=1 lo')), []);
    assert.deepEqual(splitter.feed(Buffer.from('ss=0.5\nnext')), ['::metric step=1 loss=0.5']);
    assert.deepEqual(splitter.flush(), ['next']);
  });

  it('emits a line at its CR at once, and takes an LF in the next chunk as the same line end', () => {
    const splitter = new LineSplitter();
    assert.deepEqual(splitter.feed(Buffer.from('a\r')), ['a']);
    assert.deepEqual(splitter.feed(Buffer.from('\nb\r')), ['b']);
    assert.deepEqual(splitter.feed(Buffer.from('\r\n')), ['']); // CR ended 'b'; the CRLF ends an empty line
    assert.deepEqual(splitter.flush(), []);
  });

  it('keeps waiting for a CRLF across an empty chunk and one that is only part of a character', () => {
    const splitter = new LineSplitter();
    assert.deepEqual(splitter.feed(Buffer.from('a\r')), ['a']);
    assert.deepEqual(splitter.feed(Buffer.alloc(0)), []);
    assert.deepEqual(splitter.feed(Buffer.from('\n')), []);
    assert.deepEqual(splitter.feed(Buffer.from('é\r').subarray(0, 1)), []);
    assert.deepEqual(splitter.feed(Buffer.from('é\n').subarray(1)), ['é']);
  });

  it('reads progress bars redrawn with CR as separate lines', () => {
    const tqdm = '\r  0%|          | 0/3\r 33%|###       | 1/3\r::metric step=1 loss=0.5\r100%|##########| 3/3\n';
    assert.deepEqual(splitAll([tqdm]), ['', '  0%|          | 0/3', ' 33%|###       | 1/3', '::metric step=1 loss=0.5', '100%|##########| 3/3']);
  });

  it('decodes a UTF-8 character split across chunks', () => {
    const bytes = Buffer.from('λ=1 ✓ 🚀 done\n');
    for (let cut = 0; cut <= bytes.length; cut++) {
      assert.deepEqual(splitAll([bytes.subarray(0, cut), bytes.subarray(cut)]), ['λ=1 ✓ 🚀 done'], `cut at byte ${cut}`);
    }
    // One byte at a time, through a 4-byte character.
    assert.deepEqual(splitAll([...bytes].map((b) => Buffer.from([b]))), ['λ=1 ✓ 🚀 done']);
  });

  it('gives the last line without a line end on flush, and a dangling partial character as U+FFFD', () => {
    assert.deepEqual(splitAll(['a\nb']), ['a', 'b']);
    assert.deepEqual(splitAll(['a\n']), ['a']);
    assert.deepEqual(splitAll([]), []);
    assert.deepEqual(splitAll([Buffer.from('x🚀').subarray(0, 3)]), ['x\ufffd']);
  });

  it('can be reused after flush', () => {
    const splitter = new LineSplitter();
    assert.deepEqual(splitAll(['a\r'], splitter), ['a']);
    assert.deepEqual(splitAll(['\nb\n'], splitter), ['', 'b']); // the earlier CR is forgotten
  });

  it('cuts and marks a line longer than the limit, drops its rest, and goes on', () => {
    const splitter = new LineSplitter({ maxLineLength: 10 });
    assert.deepEqual(splitter.feed(Buffer.from('0123456')), []);
    assert.deepEqual(splitter.feed(Buffer.from('789abcdef')), [`0123456789${TRUNCATION_MARK}`]);
    assert.deepEqual(splitter.feed(Buffer.from('ghijk'.repeat(1000))), []);
    assert.deepEqual(splitter.feed(Buffer.from('xyz\nshort\n0123456789\n0123456789AB\n')), ['short', '0123456789', `0123456789${TRUNCATION_MARK}`]);
    assert.deepEqual(splitter.flush(), []);
  });

  it('does not cut a surrogate pair in two', () => {
    assert.deepEqual(splitAll(['abc🚀def\n'], new LineSplitter({ maxLineLength: 4 })), [`abc${TRUNCATION_MARK}`]);
  });

  it('keeps its memory bounded on a stream that never ends a line', () => {
    const splitter = new LineSplitter({ maxLineLength: 1000 });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const lines: string[] = [];
    for (let i = 0; i < 160; i++) lines.push(...splitter.feed(chunk)); // 10 MiB
    lines.push(...splitter.flush());
    assert.deepEqual(lines, [`${'x'.repeat(1000)}${TRUNCATION_MARK}`]);
  });

  it('gives the same lines however the bytes are chunked (property)', () => {
    const piece = fc.constantFrom('a', 'é', '🚀', ' ', '=', '\n', '\r', '\r\n', '::metric step=1 x=2', '0.5');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 8 }), (pieces, cuts) => {
        const bytes = Buffer.from(pieces.join(''));
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let start = 0;
        for (const point of points) {
          chunks.push(bytes.subarray(start, point));
          start = point;
        }
        chunks.push(bytes.subarray(start));
        const expected = pieces.join('').split(/\r\n|\r|\n/);
        if (expected[expected.length - 1] === '') expected.pop();
        assert.deepEqual(splitAll(chunks), expected);
      }),
    );
  });
});

describe('MetricLineReader', () => {
  it('calls back once per metric line, across chunks, and skips everything else', () => {
    const got: MetricPoint[][] = [];
    const reader = new MetricLineReader((points) => got.push(points));
    const log = Buffer.from(
      'train.py: 1600 train / 200 val samples\r\n::metric step=10 loss=0.7 acc=0.5\r\n\n' +
      '::metric step=10 loss=oops\n  ::metric step=20 loss=0.6 acc=0.6\r 50%|#####\r::metric step=20 val_acc=0.7',
    );
    for (let i = 0; i < log.length; i += 7) reader.feed(log.subarray(i, i + 7));
    assert.equal(got.length, 2);
    reader.flush();
    assert.deepEqual(got.map(record), [
      { step: 10, loss: 0.7, acc: 0.5 },
      { step: 20, loss: 0.6, acc: 0.6 },
      { step: 20, val_acc: 0.7 },
    ]);
  });

  it('never reads a value from a metric line cut at the length limit', () => {
    const got: MetricPoint[][] = [];
    const reader = new MetricLineReader((points) => got.push(points), { maxLineLength: 30 });
    reader.feed(Buffer.from('::metric step=1 loss=0.123456789 acc=0.5\n::metric step=2 loss=0.1\n'));
    reader.flush();
    assert.deepEqual(got.map(record), [{ step: 2, loss: 0.1 }]);
  });
});
