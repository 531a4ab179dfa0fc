// Runs runner/python/drover_metrics.py in a real Python and reads what it writes back with the
// runner's own parsers: the helper and the parsers must agree on the format.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseMetricJson, parseMetricLine, type MetricPoint } from '../../runner/src/metrics/metric-lines';

const HELPER_DIR = resolve(__dirname, '../../../runner/python');
const python = process.env.DROVER_TEST_PYTHON ?? 'python3';

/** The training loop the tests run; argv[1] picks a bad call to make after two good ones. */
const SCRIPT = `
import sys
from drover_metrics import log
log(1, loss=0.5, acc=1)
log(2, **{"train/loss": 1e-7, "lr.group-0": 0.1, "big": 2**40})
log(lr=3e-4)
bad = sys.argv[1] if len(sys.argv) > 1 else ""
if bad == "nan":
    log(3, loss=float("nan"), acc=0.25)
    log(4, loss=float("inf"))
    log(5, loss=float("-inf"), acc=0.5)
elif bad == "string":
    log(3, loss="0.5")
elif bad == "name":
    log(3, **{"bad name": 1})
print("done", flush=True)
`;

const EXPECTED = [
  [{ step: 1, name: 'loss', value: 0.5 }, { step: 1, name: 'acc', value: 1 }],
  [{ step: 2, name: 'train/loss', value: 1e-7 }, { step: 2, name: 'lr.group-0', value: 0.1 }, { step: 2, name: 'big', value: 2 ** 40 }],
  [{ step: null, name: 'lr', value: 3e-4 }],
];

function runScript(args: string[], metricsFile?: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONPATH: HELPER_DIR, PYTHONDONTWRITEBYTECODE: '1' };
  delete env.DROVER_METRICS;
  if (metricsFile !== undefined) env.DROVER_METRICS = metricsFile;
  const result = spawnSync(python, ['-c', SCRIPT, ...args], { env, encoding: 'utf8', timeout: 30_000 });
  assert.equal(result.error, undefined, `cannot run ${python}: ${String(result.error)}`);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function withoutTime(points: MetricPoint[]): MetricPoint[] {
  return points.map(({ at: _at, ...point }) => point);
}

describe('drover_metrics.py', function () {
  this.timeout(60_000);
  let dir: string;

  before(() => assert.ok(existsSync(join(HELPER_DIR, 'drover_metrics.py')), `no helper in ${HELPER_DIR}`));
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'drover-py-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('appends JSON lines to $DROVER_METRICS that parseMetricJson reads, and prints no metric lines', () => {
    const file = join(dir, 'metrics.jsonl');
    const before = Date.now();
    const { code, stdout, stderr } = runScript([], file);
    assert.equal(code, 0, stderr);
    assert.equal(stdout, 'done\n', 'with $DROVER_METRICS set, nothing goes to stdout');

    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.pop(), '', 'every record ends with a newline');
    const records = lines.map(parseMetricJson);
    assert.deepEqual(records.map((points) => withoutTime(points ?? [])), EXPECTED);
    for (const points of records) {
      const at = points?.[0].at;
      assert.ok(at !== undefined && at >= before - 1000 && at <= Date.now() + 1000, `time ${at} is when the record was made`);
    }
  });

  it('appends to an existing file', () => {
    const file = join(dir, 'metrics.jsonl');
    assert.equal(runScript([], file).code, 0);
    assert.equal(runScript([], file).code, 0);
    assert.equal(readFileSync(file, 'utf8').trimEnd().split('\n').length, 6);
  });

  it('prints ::metric lines that parseMetricLine reads when $DROVER_METRICS is unset or empty', () => {
    for (const metricsFile of [undefined, '']) {
      const { code, stdout, stderr } = runScript([], metricsFile);
      assert.equal(code, 0, stderr);
      const lines = stdout.split('\n');
      assert.deepEqual(lines.slice(3), ['done', '']);
      assert.deepEqual(lines.slice(0, 3).map(parseMetricLine), EXPECTED);
    }
  });

  it('leaves out NaN and infinite values, says so once per metric on stderr, and goes on', () => {
    const file = join(dir, 'metrics.jsonl');
    const expected = [...EXPECTED, [{ step: 3, name: 'acc', value: 0.25 }], [{ step: 5, name: 'acc', value: 0.5 }]];
    const warning = "drover_metrics: loss is nan at step 3; NaN and infinite values are left out (said once per metric)\n";
    const written = runScript(['nan'], file);
    assert.deepEqual([written.code, written.stdout, written.stderr], [0, 'done\n', warning]);
    assert.deepEqual(readFileSync(file, 'utf8').trimEnd().split('\n').map((line) => withoutTime(parseMetricJson(line) ?? [])), expected);
    const printed = runScript(['nan']);
    assert.deepEqual([printed.code, printed.stderr], [0, warning]);
    assert.deepEqual(printed.stdout.trimEnd().split('\n').map(parseMetricLine), [...expected, null]);
  });

  it('fails with a ValueError naming the problem, before writing the bad record', () => {
    const file = join(dir, 'metrics.jsonl');
    const cases: [string, RegExp][] = [
      ['string', /ValueError: drover_metrics: metric 'loss' must be a number, got '0\.5'/],
      ['name', /ValueError: drover_metrics: metric name 'bad name' must match/],
    ];
    for (const [bad, message] of cases) {
      rmSync(file, { force: true });
      const { code, stdout, stderr } = runScript([bad], file);
      assert.notEqual(code, 0, `${bad}: expected a failure`);
      assert.match(stderr, message);
      assert.equal(stdout, '');
      assert.equal(readFileSync(file, 'utf8').trimEnd().split('\n').length, 3, `${bad}: only the good records`);

      const printed = runScript([bad]);
      assert.notEqual(printed.code, 0);
      assert.match(printed.stderr, message);
      assert.equal(printed.stdout.trimEnd().split('\n').length, 3);
    }
  });
});
