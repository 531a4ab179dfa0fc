/**
 * The same extension test suite (suite/*.vstest.ts) in desktop VS Code, through
 * @vscode/test-electron, which downloads VS Code into .vscode-test/: for machines with internet
 * (and a display; on a headless Linux run it under `xvfb-run -a`). Offline, `npm run test:vscode`
 * runs the suite in the VS Code server instead (run.ts).
 * Needs `npm run build` first. Usage: node out/test/vscode/run-electron.js
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';

const REPO = path.resolve(__dirname, '..', '..', '..');
// The version the server run uses (code-server 4.100.3), which is also engines.vscode's floor.
const VSCODE_VERSION = process.env.DROVER_VSCODE_VERSION ?? '1.100.3';

async function main(): Promise<number> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-vscode-electron-'));
  const workspace = path.join(root, 'workspace');
  fs.cpSync(path.join(REPO, 'test', 'vscode', 'workspace'), workspace, { recursive: true });
  const userData = path.join(root, 'user-data');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify({ 'workbench.startupEditor': 'none', 'security.workspace.trust.enabled': false, 'update.mode': 'none' }));
  // The daemon the extension starts gets a throwaway home and the fake GPUs, as in run.ts.
  const env = {
    DROVER_HOME: path.join(root, 'drover-home'),
    DROVER_FAKE_GPUS: path.join(REPO, 'test', 'fixtures', 'gpus', 'two-a100.json'),
    PATH: [path.join(REPO, 'test', 'fixtures', 'bin'), process.env.PATH].filter(Boolean).join(path.delimiter),
  };
  try {
    return await runTests({
      version: VSCODE_VERSION,
      extensionDevelopmentPath: REPO,
      extensionTestsPath: path.join(REPO, 'out', 'test', 'vscode', 'suite', 'index.js'),
      extensionTestsEnv: env,
      launchArgs: [workspace, '--user-data-dir', userData, '--extensions-dir', path.join(root, 'extensions'), '--disable-workspace-trust', '--skip-welcome', '--skip-release-notes'],
    });
  } finally {
    spawnSync(process.execPath, [path.join(REPO, 'bin', 'drover.js'), 'daemon', 'stop'], { env: { ...process.env, ...env }, stdio: 'inherit', timeout: 20_000 });
    fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    // runTests rejects when VS Code exits non-zero, i.e. when a test failed.
    console.error(`test:electron: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
