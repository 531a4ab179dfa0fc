import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../..');
const BIN = join(ROOT, 'bin/drover.js');

/** Runs the installed CLI as a user would: a real process, real files. */
function drover(args: string[], cwd = ROOT) {
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('drover CLI', () => {
  let dir: string;

  before(() => assert.ok(existsSync(join(ROOT, 'dist/drover.js')), 'dist/drover.js is missing: run `npm run build` first'));
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'drover-cli-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('validates the example specs', () => {
    const { code, stdout, stderr } = drover(['validate', 'examples/train.drover.yaml', 'examples/nightly.drover.yaml', 'examples/gpu-sweep.drover.yaml']);
    assert.equal(stderr, '');
    assert.equal(stdout.trim(), '3 specs checked: no problems');
    assert.equal(code, 0);
  });

  it('finds the specs under a directory', () => {
    const { code, stdout } = drover(['validate', 'examples']);
    assert.equal(code, 0);
    assert.match(stdout, /^3 specs checked: no problems$/m);
  });

  it('prints file:line:col: problems for a broken spec and exits 1', () => {
    const spec = join(dir, 'broken.drover.yaml');
    writeFileSync(spec, ['name: broken', 'run: python train.py --lr ${{ params.lrr }}', 'params: { lr: 0.1 }', 'resurces: { gpus: 1 }', 'timeout: 2 hours', ''].join('\n'));
    const { code, stdout, stderr } = drover(['validate', spec]);
    assert.equal(code, 1);
    assert.deepEqual(stdout.trim().split('\n'), [
      `${spec}:2:31: error: 'broken' has no parameter 'lrr'; did you mean 'lr'? (it has lr)`,
      `${spec}:4:1: error: unknown key 'resurces' in the spec; did you mean 'resources'?`,
      `${spec}:5:10: error: 'timeout': '2 hours' is not a duration; write e.g. 90s, 45m, 2h, 1h30m or 1d`,
    ]);
    assert.equal(stderr.trim(), '1 spec checked: 3 errors, 0 warnings');
  });

  it('passes warnings with exit 0, and reports JSON for scripts', () => {
    const spec = join(dir, 'warn.drover.yaml');
    writeFileSync(spec, 'run: echo ${{ params.a }}\nsweep: { parameters: { a: [1], b: [2] } }\n');
    const human = drover(['validate', spec]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /warn\.drover\.yaml:2:32: warning: sweep parameter 'b' is never used/);
    const json = drover(['validate', '--json', spec]);
    assert.equal(json.code, 0);
    const [report] = JSON.parse(json.stdout) as { file: string; diagnostics: { code: string; line: number; column: number; severity: string }[] }[];
    assert.equal(report!.file, spec);
    assert.deepEqual(report!.diagnostics.map((d) => [d.severity, d.code, d.line, d.column]), [['warning', 'sweep-domain', 2, 32]]);
  });

  it('says clearly when a file is missing or the command line is wrong', () => {
    const missing = drover(['validate', join(dir, 'nope.drover.yaml')]);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /drover validate: cannot read '.*nope\.drover\.yaml': no such file or directory/);
    const none = drover(['validate']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /name at least one spec file/);
    const unknown = drover(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    // A name every object has is no command either.
    const inherited = drover(['constructor']);
    assert.equal(inherited.code, 2);
    assert.match(inherited.stderr, /unknown command 'constructor'/);
    const badFlag = drover(['validate', '--nope', 'x']);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Unknown option '--nope'/);
  });

  it('refuses a wrong `drover run` option by its name, before reaching any daemon', () => {
    // No daemon is started for these: each is refused as the command line is read.
    const home = join(dir, 'home');
    const cases: [string[], RegExp][] = [
      [['run'], /drover run: name a command to run, after --/],
      [['run', '--timeout', 'abc', '--', 'true'], /drover run: --timeout: 'abc' is not a duration; write e\.g\. 90s/],
      [['run', '--retries', 'x', '--', 'true'], /drover run: --retries takes a whole number from 0 to 100, not 'x'/],
      [['run', '--retries', '101', '--', 'true'], /not '101'/],
      [['run', '--mem', '8XB', '--', 'true'], /drover run: --mem: unknown size unit 'XB'/],
      [['run', '--cpus', '0', '--', 'true'], /drover run: --cpus takes a number above 0, not '0'/],
    ];
    for (const [args, message] of cases) {
      const result = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, DROVER_HOME: home } });
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
    // A file that is not there: exit 3, the same words as for a spec, and still no daemon.
    for (const args of [['run', 'nope.ipynb'], ['submit', 'nope.drover.yaml']]) {
      const result = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, DROVER_HOME: home } });
      assert.equal(result.status, 3, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stderr.trim(), `drover ${args[0]}: cannot read '${args[1]}': no such file or directory`);
    }
    assert.ok(!existsSync(home), 'no daemon was started');
  });

  it('ends quietly when the reader of its output stops early (a pipe into head)', () => {
    const spec = join(dir, 'big.drover.yaml');
    writeFileSync(spec, 'name: big\nrun: "echo ${{ params.i }}"\nsweep: { parameters: { i: { range: [0, 5000] } } }\n');
    // Far more than a pipe holds, so the writes after head has gone meet a closed pipe.
    const result = spawnSync('bash', ['-c', 'set -o pipefail; "$0" "$1" plan --json "$2" 2>"$3" | head -c 100 >/dev/null', process.execPath, BIN, spec, join(dir, 'stderr')], { encoding: 'utf8' });
    assert.equal(result.status, 141, 'as a process ended by SIGPIPE');
    assert.equal(readFileSync(join(dir, 'stderr'), 'utf8'), '', 'no stack trace');
  });

  it('plans the runs of a sweep, with overrides', () => {
    const { code, stdout } = drover(['plan', 'examples/train.drover.yaml']);
    assert.equal(code, 0);
    const lines = stdout.trim().split('\n');
    assert.equal(lines[0], 'lr-sweep: 6 runs');
    assert.match(lines[1]!, /^RUN\s+RESOURCES\s+NEEDS\s+COMMAND$/);
    assert.match(lines[2]!, /^lr-sweep\[0\]\s+1 cpu, 512 MiB\s+-\s+python3 train.py --lr 0.3 --seed 0 --out outputs\/lr0.3-s0$/);
    const fixed = drover(['plan', '--json', '-p', 'lr=0.05', 'examples/train.drover.yaml']);
    assert.equal(fixed.code, 0);
    const plan = JSON.parse(fixed.stdout) as { runs: { key: string; command: string }[] };
    assert.deepEqual(plan.runs.map((run) => run.command), [
      'python3 train.py --lr 0.05 --seed 0 --out outputs/lr0.05-s0',
      'python3 train.py --lr 0.05 --seed 1 --out outputs/lr0.05-s1',
    ]);
  });

  it('plans a workflow in dependency order and refuses unknown parameters', () => {
    const { code, stdout } = drover(['plan', '--json', 'examples/nightly.drover.yaml']);
    assert.equal(code, 0);
    const plan = JSON.parse(stdout) as { kind: string; runs: { key: string; needs: string[] }[] };
    assert.equal(plan.kind, 'workflow');
    assert.deepEqual(plan.runs.map((run) => [run.key, run.needs]), [['featurize', []], ['train', ['featurize']], ['evaluate', ['train']]]);
    const wrong = drover(['plan', '-p', 'spilt=train', 'examples/nightly.drover.yaml']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /'nightly' has no parameter 'spilt'; did you mean 'split'\?/);
  });

  it('refuses to plan a spec with errors, printing them', () => {
    const spec = join(dir, 'cycle.drover.yaml');
    writeFileSync(spec, 'jobs:\n  a: { run: x, needs: [b] }\n  b: { run: y, needs: [a] }\n');
    const { code, stderr } = drover(['plan', spec]);
    assert.equal(code, 1);
    assert.match(stderr, /cycle\.drover\.yaml:\d+:\d+: error: dependency cycle: (a → b → a|b → a → b)/);
  });

  it('answers --help and --version', () => {
    const help = drover(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /validate\s+check specs/);
    assert.match(help.stdout, /^ {2}ps\s+what is queued .*\(also: drover queue\)$/m);
    const version = drover(['--version']);
    assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
  });
});
