/**
 * Extension benchmark: what installing and opening Drover costs. Run with `npm run bench`.
 *
 *   - The `.vsix` that `npm run package` makes: its size, and what is in it.
 *   - Activation time in a real VS Code (the code-server the extension tests use, see
 *     test/vscode/run.ts): from the first line of dist/extension.js to the end of activate(), as
 *     the extension itself reports it, over several fresh windows. Activation is lazy (Drover
 *     files, views and commands) and connects to the daemon and the language server afterwards,
 *     in the background, so this is what it adds to opening a window.
 *
 * Where code-server or Chromium cannot run, it says so and reports the size alone.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { check, latency, ms, table } from './report';

const REPO = resolve(__dirname, '..', '..');
const WINDOWS = 5;

function packageVsix(): { file: string; bytes: number; files: number } {
  const { name, version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };
  const made = spawnSync('npm', ['run', '--silent', 'package'], { cwd: REPO, encoding: 'utf8' });
  check(made.status === 0, `npm run package failed: ${made.stderr}`);
  const file = join(REPO, `${name}-${version}.vsix`);
  const listing = spawnSync('unzip', ['-Z1', file], { encoding: 'utf8' });
  const files = listing.status === 0 ? listing.stdout.trim().split('\n').filter((entry) => entry.startsWith('extension/')).length : NaN;
  return { file, bytes: statSync(file).size, files };
}

function activationOnce(): number | string {
  const dir = mkdtempSync(join(tmpdir(), 'drover-bench-activation-'));
  const out = join(dir, 'result.json');
  try {
    const run = spawnSync(process.execPath, [join(REPO, 'out', 'test', 'vscode', 'run.js'), '--grep', 'activates when'], {
      cwd: REPO,
      env: { ...process.env, DROVER_BENCH_OUT: out },
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (run.status !== 0) return `the VS Code run failed (${run.status ?? run.signal}): ${(run.stderr || run.stdout).trim().split('\n').slice(-3).join(' / ')}`;
    return (JSON.parse(readFileSync(out, 'utf8')) as { activationMs: number }).activationMs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(): void {
  console.log(`Drover extension benchmark: .vsix size and activation time in a real VS Code, ${new Date().toISOString()}\n`);
  const vsix = packageVsix();
  const samples: number[] = [];
  let skipped: string | undefined;
  for (let i = 0; i < WINDOWS && !skipped; i++) {
    process.stderr.write(`  activation: window ${i + 1} of ${WINDOWS}\n`);
    const result = activationOnce();
    if (typeof result === 'string') skipped = result;
    else samples.push(result);
  }
  const rows = [[`.vsix size (${vsix.files} files)`, `${(vsix.bytes / 1024 / 1024).toFixed(2)} MiB`]];
  if (samples.length) {
    const activation = latency(samples);
    rows.push([`activation p50 (ms, ${activation.n} windows)`, ms(activation.p50)], ['activation max (ms)', ms(Math.max(...samples))]);
  }
  console.log(table(['measure', 'value'], rows));
  if (skipped) console.log(`\nactivation not measured: ${skipped}`);
}

main();
