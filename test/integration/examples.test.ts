// Runs the example ML workspace in examples/ with a real Python and checks that it
// learns and reports its metrics in the documented `::metric` form.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const examplesDir = path.resolve(__dirname, '../../../examples');
const python = process.env.DROVER_TEST_PYTHON ?? 'python3';

type MetricRecord = Record<string, number>;

/** Reads `::metric step=<int> name=value ...` lines; other lines are ignored. */
function parseMetricLines(stdout: string): MetricRecord[] {
  const records: MetricRecord[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    if (!line.startsWith('::metric ')) continue;
    const record: MetricRecord = {};
    for (const pair of line.slice('::metric '.length).split(' ')) {
      const eq = pair.indexOf('=');
      assert.ok(eq > 0, `malformed pair "${pair}" in: ${line}`);
      const value = Number(pair.slice(eq + 1));
      assert.ok(Number.isFinite(value), `non-numeric value in: ${line}`);
      record[pair.slice(0, eq)] = value;
    }
    assert.ok(Number.isInteger(record.step), `no integer step in: ${line}`);
    records.push(record);
  }
  return records;
}

/** Runs python in examples/ and returns its stdout; fails the test on a non-zero exit. */
function runPython(args: string[], extraEnv: Record<string, string> = {}): string {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...extraEnv };
  if (extraEnv.DROVER_METRICS === undefined) delete env.DROVER_METRICS;
  const result = spawnSync(python, args, { cwd: examplesDir, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.error, undefined, `cannot run ${python}: ${String(result.error)}`);
  assert.equal(result.status, 0,
    `${python} ${args.join(' ')} exited with ${result.status}:\n${result.stderr}`);
  return result.stdout;
}

/** Asserts a train.py run reported several metrics and got better as it went. */
function assertLearned(records: MetricRecord[], epochs: number): void {
  const training = records.filter((r) => r.loss !== undefined && r.acc !== undefined);
  const validation = records.filter((r) => r.val_loss !== undefined && r.val_acc !== undefined);
  assert.ok(training.length >= 5, `only ${training.length} training metric lines`);
  assert.equal(validation.length, epochs, 'one validation metric line per epoch');
  const steps = records.map((r) => r.step);
  assert.deepEqual(steps, [...steps].sort((a, b) => a - b), 'steps never go back');
  const lastVal = validation[validation.length - 1];
  assert.ok(lastVal.val_acc > 0.8, `final val_acc ${lastVal.val_acc} is not above 0.8`);
  const first = training[0];
  const last = training[training.length - 1];
  assert.ok(last.loss < first.loss, `training loss went from ${first.loss} to ${last.loss}`);
}

describe('examples workspace', function () {
  this.timeout(120_000);
  let tmp: string;

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-examples-'));
  });

  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('train.py learns on generated data and writes its outputs', () => {
    const stdout = runPython(['train.py', '--epochs', '10', '--out', tmp]);
    const records = parseMetricLines(stdout);
    assertLearned(records, 10);
    const final = JSON.parse(fs.readFileSync(path.join(tmp, 'metrics.json'), 'utf8')) as MetricRecord;
    assert.ok(final.val_acc > 0.8);
    assert.ok(fs.existsSync(path.join(tmp, 'model.json')));
  });

  it('featurize.py writes a features file that train.py --features learns from', () => {
    const features = path.join(tmp, 'features.csv');
    const featurized = parseMetricLines(runPython(['featurize.py', '--out', features]));
    assert.equal(featurized.length, 1);
    assert.equal(featurized[0].rows, 2000);
    const lines = fs.readFileSync(features, 'utf8').trim().split(/\r?\n/);
    assert.equal(lines[0], 'x1,x2,label,split');
    assert.equal(lines.length, 2001);

    const stdout = runPython(['train.py', '--epochs', '10', '--features', features, '--out', tmp]);
    assertLearned(parseMetricLines(stdout), 10);
  });

  it('sends the same metrics to the file named by DROVER_METRICS instead, at full precision', () => {
    const metricsFile = path.join(tmp, 'metrics.jsonl');
    const printed = parseMetricLines(runPython(['train.py', '--epochs', '2', '--out', path.join(tmp, 'a')]));
    const stdout = runPython(['train.py', '--epochs', '2', '--out', path.join(tmp, 'b')], { DROVER_METRICS: metricsFile });
    // Each record is reported once: with the file set, nothing metric-shaped is printed.
    assert.deepEqual(parseMetricLines(stdout), []);
    const written = fs.readFileSync(metricsFile, 'utf8').trim().split('\n')
      .map((line) => JSON.parse(line) as MetricRecord);
    assert.ok(written.length >= 3);
    assert.equal(written.length, printed.length);
    written.forEach((record, i) => {
      assert.deepEqual(Object.keys(record), Object.keys(printed[i]));
      assert.ok(Number.isInteger(record.step));
      for (const [name, value] of Object.entries(record)) {
        // stdout carries 6 significant digits; the file carries full precision.
        assert.ok(Math.abs(value - printed[i][name]) <= 1e-5 * Math.max(1, Math.abs(value)),
          `${name}: ${value} in the file, ${printed[i][name]} on stdout`);
      }
    });
  });

  it('eval.ipynb is an nbformat 4 notebook with a parameters cell', () => {
    const notebook = JSON.parse(fs.readFileSync(path.join(examplesDir, 'eval.ipynb'), 'utf8')) as {
      nbformat: number;
      nbformat_minor: number;
      metadata: { kernelspec?: { name?: string } };
      cells: { id?: string; cell_type: string; metadata: { tags?: string[] }; source: string[] | string;
        outputs?: unknown[]; execution_count?: number | null }[];
    };
    assert.equal(notebook.nbformat, 4);
    assert.ok(notebook.nbformat_minor >= 5, 'cell ids need nbformat 4.5');
    assert.equal(notebook.metadata.kernelspec?.name, 'python3');
    const ids = new Set<string>();
    for (const cell of notebook.cells) {
      assert.match(cell.id ?? '', /^[A-Za-z0-9_-]{1,64}$/);
      assert.ok(!ids.has(cell.id ?? ''), `duplicate cell id ${cell.id}`);
      ids.add(cell.id ?? '');
      assert.ok(['code', 'markdown', 'raw'].includes(cell.cell_type));
      if (cell.cell_type === 'code') {
        assert.deepEqual(cell.outputs, []);
        assert.equal(cell.execution_count, null);
      }
    }
    const firstCode = notebook.cells.find((c) => c.cell_type === 'code');
    assert.ok(firstCode, 'the notebook has a code cell');
    assert.ok(firstCode.metadata.tags?.includes('parameters'), 'the first code cell is tagged parameters');
    const source = Array.isArray(firstCode.source) ? firstCode.source.join('') : firstCode.source;
    for (const name of ['split', 'seed', 'checkpoint']) {
      assert.match(source, new RegExp(`^${name} = `, 'm'), `the parameters cell defines ${name}`);
    }
  });

  it("eval.ipynb's code cells run in order and report the test accuracy", () => {
    runPython(['train.py', '--epochs', '5', '--out', tmp]);
    // Executes the code cells in one namespace as a kernel would, injecting parameter
    // values after the cell tagged `parameters` as papermill does.
    const runner = [
      'import json, sys',
      'nb = json.load(open(sys.argv[1]))',
      'ns = {"__name__": "__main__"}',
      'for cell in nb["cells"]:',
      '    if cell["cell_type"] == "code":',
      '        exec(compile("".join(cell["source"]), cell["id"], "exec"), ns)',
      '        if "parameters" in cell["metadata"].get("tags", []):',
      '            exec(sys.argv[2], ns)',
    ].join('\n');
    const injected = `checkpoint = ${JSON.stringify(path.join(tmp, 'model.json'))}`;
    const records = parseMetricLines(runPython(['-c', runner, 'eval.ipynb', injected]));
    const test = records.find((r) => r.test_acc !== undefined);
    assert.ok(test, 'a ::metric line with test_acc');
    assert.ok(test.test_acc > 0.8, `test_acc ${test.test_acc}`);
  });
});
