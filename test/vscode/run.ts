/**
 * Runs the extension in a real VS Code, offline: the VS Code server that the `code-server` npm
 * package bundles (installed once into .cache/ by install-code-server.sh), driven by headless
 * Chromium through playwright-core. Two passes against one server:
 *
 * 1. the mocha suite (suite/*.vstest.ts) in the extension host, the way @vscode/test-electron
 *    runs it (`extensionDevelopmentPath` + `extensionTestsPath`), its reporter output relayed
 *    through the page's `codeAutomationLog` and its result through `codeAutomationExit`;
 * 2. a UI pass as a person would do it: the command palette, the Drover view, a broken spec and
 *    the Problems panel, with screenshots in out/screenshots/.
 *
 * `--vsix [file]` instead installs the packaged extension (default: the one `npm run package`
 * writes) into a fresh VS Code and runs the UI pass against it.
 * Needs `npm run build` first. Usage: node out/test/vscode/run.js [--vsix [file]] [--grep text] [--keep]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as util from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, findChromium } from '../support/chromium';
import { installServer, remoteUri, REPO, workbenchUrl } from './code-server';

const SUITE_INDEX = path.join(REPO, 'out', 'test', 'vscode', 'suite', 'index.js');
const SCREENSHOTS = path.join(REPO, 'out', 'screenshots');
/** Everything the run saw (workbench log, server output, extension host logs on failure). */
const LOG_FILE = path.join(REPO, 'out', 'test-vscode.log');
/**
 * The workbench's log lines that say nothing about the extension: startup chatter, and what fails
 * because this VS Code is offline (the Open VSX gallery, the service worker code-server does not
 * serve). Kept in LOG_FILE, not echoed.
 */
const WORKBENCH_CHATTER = [
  /^Resolv(ing|ed) connection token/,
  /^Creating a socket/,
  /^Updating additional builtin extensions cache/,
  /^ChatSessionStore:/,
  /^\[Service Worker\] registration/,
  /ENOTFOUND open-vsx\.org/,
];
const TIMEOUT_S = Number(process.env.DROVER_VSCODE_TIMEOUT_S) || 240;
/** The fake GPUs the daemon sees through test/fixtures/bin/nvidia-smi. */
const FAKE_GPUS = path.join(REPO, 'test', 'fixtures', 'gpus', 'two-a100.json');

interface Options {
  vsix?: string;
  grep?: string;
  keep: boolean;
}

interface PackageJson {
  name: string;
  version: string;
  publisher: string;
  contributes?: {
    commands?: { command: string; title: string; category?: string }[];
    viewsContainers?: { activitybar?: { id: string; title: string }[] };
    notebookRenderer?: { id: string; mimeTypes: string[] }[];
  };
}

function parseArgs(argv: string[]): Options {
  const options: Options = { keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--keep') options.keep = true;
    else if (arg === '--grep' && argv[i + 1] !== undefined) options.grep = argv[++i];
    else if (arg === '--vsix') {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) options.vsix = path.resolve(argv[++i]!);
      else {
        const pkg = readPackageJson();
        options.vsix = path.join(REPO, `${pkg.name}-${pkg.version}.vsix`);
      }
    } else throw new Error(`unknown argument '${arg}'; usage: run.js [--vsix [file]] [--grep text] [--keep]`);
  }
  return options;
}

function readPackageJson(): PackageJson {
  return JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as PackageJson;
}

const logLines: string[] = [];
let logSaved = false;
function record(line: string): void {
  logLines.push(line.endsWith('\n') ? line : `${line}\n`);
}

/** Written once at the end, whole, so that two runs at once don't interleave their lines. */
function saveLog(): void {
  if (logSaved) return;
  logSaved = true;
  fs.mkdirSync(path.dirname(LOG_FILE), { recursive: true });
  const partial = `${LOG_FILE}.${process.pid}`;
  fs.writeFileSync(partial, logLines.join(''));
  fs.renameSync(partial, LOG_FILE);
}

const startedAt = Date.now();
function log(message: string): void {
  const line = `[vscode ${((Date.now() - startedAt) / 1000).toFixed(1).padStart(5)}s] ${message}`;
  record(line);
  console.log(line);
}

/** What the run is doing, for the timeout's message. */
let phase = 'starting';
function step(what: string): void {
  phase = what;
  log(what);
}

function chromiumPath(): string {
  const found = findChromium();
  if (!found) throw new Error('no Chromium found on PATH (apt-get install chromium, or set CHROMIUM_PATH)');
  return found;
}

/** The server's entry point, installing code-server into .cache/ first if needed. */
/** Everything a run creates outside the repo, under one temporary folder. */
class Sandbox {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-vscode-'));
  readonly userData = this.dir('user-data');
  readonly extensions = this.dir('extensions');
  readonly serverData = this.dir('server-data');
  readonly droverHome = this.dir('drover-home');
  readonly chromiumProfile = this.dir('chromium');

  dir(name: string): string {
    const dir = path.join(this.root, name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** A fresh copy of test/vscode/workspace/ (each pass gets its own, so editors one opens don't show in the next). */
  workspace(name: string): string {
    const dir = path.join(this.root, name);
    fs.cpSync(path.join(REPO, 'test', 'vscode', 'workspace'), dir, { recursive: true });
    return dir;
  }

  /** The VS Code server's own environment, which its extension hosts (and so the daemon) inherit. */
  env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      // Never the user's real ~/.drover; and GPUs, from the nvidia-smi stand-in.
      DROVER_HOME: this.droverHome,
      DROVER_FAKE_GPUS: FAKE_GPUS,
      PATH: [path.join(REPO, 'test', 'fixtures', 'bin'), process.env.PATH].filter(Boolean).join(path.delimiter),
    };
  }

  writeSettings(): void {
    const settings = JSON.stringify(
      {
        // Else the welcome page opens and takes the focus.
        'workbench.startupEditor': 'none',
        // Else a fresh folder opens in restricted mode behind a "Do you trust…" dialog.
        'security.workspace.trust.enabled': false,
        'workbench.tips.enabled': false,
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'telemetry.telemetryLevel': 'off',
        'update.mode': 'none',
      },
      null,
      2,
    );
    // code-server's web client keeps its user settings on the server, under --user-data-dir.
    fs.mkdirSync(path.join(this.userData, 'User'), { recursive: true });
    fs.writeFileSync(path.join(this.userData, 'User', 'settings.json'), settings);
  }
}

interface Server {
  process: ChildProcess;
  port: number;
  output: string[];
}

function serverArgs(entry: string, sandbox: Sandbox): string[] {
  return [
    entry,
    '--accept-server-license-terms',
    '--user-data-dir', sandbox.userData,
    '--extensions-dir', sandbox.extensions,
    '--server-data-dir', sandbox.serverData,
  ];
}

async function startServer(entry: string, sandbox: Sandbox): Promise<Server> {
  const args = [
    ...serverArgs(entry, sandbox),
    '--host', '127.0.0.1',
    // Port 0: the server picks a free one and prints it, so parallel runs can't collide.
    '--port', '0',
    '--without-connection-token',
    '--telemetry-level', 'off',
    // Else extension hosts get the environment of a login shell, whose PATH drops the fixtures.
    '--force-disable-user-env',
  ];
  // Its own process group, so the extension hosts and language servers it starts go with it.
  const child = spawn(process.execPath, args, { env: sandbox.env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  serverProcess = child;
  const output: string[] = [];
  return new Promise<Server>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString();
      output.push(text);
      record(text.replace(/^/gm, '[server] '));
      const port = /listening on (\d+)/.exec(output.join(''));
      if (port) resolve({ process: child, port: Number(port[1]), output });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`the VS Code server exited (${signal ?? code}) before listening:\n${output.join('')}`)));
  });
}

let serverProcess: ChildProcess | undefined;

/** Kills the server's whole process group: extension hosts and language servers linger otherwise. */
async function stopServer(): Promise<void> {
  const child = serverProcess;
  serverProcess = undefined;
  if (!child?.pid) return;
  const group = -child.pid;
  const signal = (name: NodeJS.Signals | 0): boolean => {
    try {
      process.kill(group, name);
      return true;
    } catch {
      return false;
    }
  };
  if (!signal('SIGTERM')) return;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && signal(0)) await delay(100);
  signal('SIGKILL');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Pass 1: the mocha suite in the extension host. Returns its exit code. */
async function runSuite(context: BrowserContext, port: number, workspace: string): Promise<number> {
  const page = await context.newPage();
  let exited!: (code: number) => void;
  const exit = new Promise<number>((resolve) => (exited = resolve));
  // The extension host's console (the reporter) and the workbench's own log arrive here alike.
  await page.exposeFunction('codeAutomationLog', (type: string, args: unknown) => {
    const line = util.format(...(Array.isArray(args) ? args : [args]));
    record(`[${type}] ${line}`);
    if (WORKBENCH_CHATTER.some((pattern) => pattern.test(line))) return;
    if (type === 'error' || type === 'warn') console.error(line);
    else console.log(line);
  });
  await page.exposeFunction('codeAutomationExit', (code: number) => exited(code));
  page.once('crash', () => {
    console.error('[vscode] the workbench page crashed');
    exited(1);
  });
  const payload: [string, string][] = [
    ['extensionDevelopmentPath', remoteUri(port, REPO)],
    ['extensionTestsPath', remoteUri(port, SUITE_INDEX)],
  ];
  await page.goto(workbenchUrl(port, workspace, payload));
  const code = await exit;
  await page.close();
  return code;
}

/** Retries `probe` (which may throw) until it returns a value or `ms` pass; undefined if it never did. */
async function within<T>(ms: number, probe: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) return undefined;
    await delay(250);
  }
}

async function shot(page: Page, name: string): Promise<void> {
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  log(`  screenshot ${path.relative(REPO, file)}`);
}

/** The labels of the quick input's rows (the palette or quick open), as a person reads them. */
async function quickInputRows(page: Page): Promise<string[]> {
  return page.locator('.quick-input-widget .monaco-list-row').evaluateAll((rows) => rows.map((row) => row.getAttribute('aria-label') ?? row.textContent ?? ''));
}

/**
 * Pass 2: what a person sees. Returns the problems found (empty when all is well). `prefix` names
 * the screenshots.
 */
async function uiPass(context: BrowserContext, url: string, prefix: string): Promise<string[]> {
  const problems: string[] = [];
  const check = (ok: boolean, problem: string): void => {
    if (!ok) problems.push(problem);
    log(`  ${ok ? 'ok' : 'FAILED'}: ${problem.replace(/^(no|not) /, '')}`);
  };
  const pkg = readPackageJson();
  const page = await context.newPage();
  await page.goto(url);
  await page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60_000 });
  await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 30_000 });

  // The command palette. Commands exist a few seconds after the workbench paints: retry, don't sleep.
  const titles = (pkg.contributes?.commands ?? []).map(({ title, category }) => (category ? `${category}: ${title}` : title));
  const paletteFor = async (text: string, rowsWithin: number): Promise<string[] | undefined> => {
    await page.keyboard.press('F1');
    await page.locator('.quick-input-widget .quick-input-box input').waitFor({ timeout: 5000 });
    await page.keyboard.type(text);
    return within(rowsWithin, async () => {
      const labels = await quickInputRows(page);
      return labels.some((label) => titles.some((title) => label.startsWith(title))) ? labels : undefined;
    });
  };
  let listed: string[] | undefined;
  if (titles.length > 0) {
    listed = await within(30_000, async () => {
      const rows = await paletteFor('Drover', 2000);
      if (!rows) await page.keyboard.press('Escape');
      return rows;
    });
    // Failed: open it once more, so the screenshot shows what it does list.
    if (!listed) await paletteFor('Drover', 1000);
  } else {
    await paletteFor('Drover', 1000);
  }
  await shot(page, `${prefix}palette`);
  if (titles.length > 0) {
    const rows = listed ?? (await quickInputRows(page));
    check(listed !== undefined, `the command palette lists Drover's commands for "Drover" (rows: ${rows.join(' | ') || 'none'})`);
  } else {
    log('  skipped: package.json contributes no commands yet, so the palette has none to list');
  }
  await page.keyboard.press('Escape');

  // The Drover view container in the activity bar, when the extension contributes one.
  const container = pkg.contributes?.viewsContainers?.activitybar?.[0];
  if (container) {
    const item = page.locator(`.part.activitybar .action-item[aria-label^="${container.title}"], .part.activitybar .action-label[aria-label^="${container.title}"]`).first();
    const opened = await within(15_000, async () => {
      await item.click({ timeout: 2000 });
      const title = await page.locator('.part.sidebar .composite.title h2').first().textContent({ timeout: 2000 });
      return title?.toLowerCase().includes(container.title.toLowerCase()) ? title : undefined;
    });
    // Its views' content (rows or welcome text) once the extension provides it; without the
    // item's tooltip over it.
    await page.mouse.move(800, 600);
    const content = await within(20_000, async () => {
      const text = (await page.locator('.part.sidebar .pane-body').first().innerText({ timeout: 1000 })).trim();
      return text && !/no data provider registered/.test(text) ? text : undefined;
    });
    await shot(page, `${prefix}activity-bar`);
    check(opened !== undefined, `the activity bar opens the "${container.title}" side bar`);
    check(content !== undefined, `the extension fills the "${container.title}" side bar's first view (${content?.split('\n')[0] ?? 'no data provider'})`);
  } else {
    log('  skipped: package.json contributes no activity bar container yet');
  }

  // A broken spec, opened with quick open: its language, and the language server's error in the Problems panel.
  const openedBroken = await within(15_000, async () => {
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget .quick-input-box input').waitFor({ timeout: 5000 });
    await page.keyboard.type('broken.drover.yaml');
    const rows = await within(3000, async () => ((await quickInputRows(page)).some((row) => row.includes('broken.drover.yaml')) ? true : undefined));
    if (!rows) {
      await page.keyboard.press('Escape');
      return undefined;
    }
    await page.keyboard.press('Enter');
    return page.locator('.tabs-container .tab.active[aria-label*="broken.drover.yaml"]').waitFor({ timeout: 5000 }).then(() => true);
  });
  check(openedBroken !== undefined, 'quick open opens broken.drover.yaml');
  const mode = await within(10_000, async () => {
    const text = await page.locator('[id="status.editor.mode"]').textContent({ timeout: 1000 });
    return text?.includes('Drover Spec') ? text.trim() : undefined;
  });
  check(mode !== undefined, 'the status bar shows the language "Drover Spec"');
  const errors = await within(30_000, async () => {
    const label = (await page.locator('[id="status.problems"] [aria-label]').first().getAttribute('aria-label', { timeout: 1000 })) ?? '';
    const count = Number(/Errors?: (\d+)/i.exec(label)?.[1] ?? 0);
    return count > 0 ? count : undefined;
  });
  check(errors !== undefined, `the status bar counts the broken spec's error (${errors ?? 0})`);
  await page.keyboard.press('Control+Shift+M');
  const reported = await within(10_000, async () => {
    const text = (await page.locator('.markers-panel').first().textContent({ timeout: 1000 })) ?? '';
    return text.includes("unknown key 'resorces'") ? text : undefined;
  });
  await shot(page, `${prefix}problems`);
  check(reported !== undefined && /did you mean 'resources'/.test(reported), "the Problems panel reports the unknown key 'resorces' with its did-you-mean");

  // A notebook with a cell's metrics output: the contributed renderer draws its chart in the output webview.
  if (pkg.contributes?.notebookRenderer?.length) {
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget .quick-input-box input').waitFor({ timeout: 5000 });
    await page.keyboard.type('cell-metrics.ipynb');
    await within(5000, async () => ((await quickInputRows(page)).some((row) => row.includes('cell-metrics.ipynb')) ? true : undefined));
    await page.keyboard.press('Enter');
    // The output lives in the notebook's webview, frames inside the page.
    const chart = await within(30_000, async () => {
      for (const frame of page.frames()) {
        // As text: it runs in the webview, where this file's types (no DOM) do not reach.
        const drawn = (await frame.evaluate(`(() => {
          const row = document.querySelector('.drover-cell-metrics [data-metric="loss"]');
          return row && row.querySelector('polyline') ? row.textContent : undefined;
        })()`)) as string | undefined;
        if (drawn) return drawn;
      }
      return undefined;
    });
    await shot(page, `${prefix}notebook-metrics`);
    check(chart !== undefined, `the notebook renderer draws a cell's metrics as a chart (${chart ?? 'nothing drawn'})`);
  }

  await page.keyboard.press('Control+Shift+M');

  // The experiment dashboard of the suite's sweep, picked from the palette, drawn in its webview.
  if (titles.includes('Drover: Open Experiment Dashboard') && !prefix) {
    const picked = await within(20_000, async () => {
      const rows = await paletteFor('Drover: Open Experiment Dashboard', 2000);
      if (!rows) {
        await page.keyboard.press('Escape');
        return undefined;
      }
      await page.keyboard.press('Enter');
      const experiments = await within(5000, async () => ((await quickInputRows(page)).some((row) => row.startsWith('lr-sweep')) ? true : undefined));
      if (!experiments) {
        await page.keyboard.press('Escape');
        return undefined;
      }
      await page.keyboard.type('lr-sweep');
      await page.keyboard.press('Enter');
      return true;
    });
    // The page is in a frame of the dashboard's webview; other webviews (the notebook's outputs) may be open too.
    const drawn = await within(30_000, async () => {
      for (const frame of page.frames()) {
        // As text: it runs in the webview, where this file's types (no DOM) do not reach.
        const counts = (await frame
          .evaluate(`(() => ({ charts: document.querySelectorAll('.chart canvas').length, rows: document.querySelectorAll('table.runs tbody tr').length }))()`)
          .catch(() => undefined)) as { charts: number; rows: number } | undefined;
        if (counts && counts.charts > 0 && counts.rows > 0) return counts;
      }
      return undefined;
    });
    await page.mouse.move(1000, 700);
    await shot(page, 'dashboard-in-vscode');
    check(picked !== undefined, 'the palette opens the experiment dashboard of lr-sweep');
    check(drawn !== undefined, `the dashboard webview draws the sweep's runs and charts (${drawn ? `${drawn.rows} rows, ${drawn.charts} charts` : 'nothing drawn'})`);
  }
  await page.close();
  return problems;
}

function stopDaemon(sandbox: Sandbox): void {
  const result = spawnSync(process.execPath, [path.join(REPO, 'bin', 'drover.js'), 'daemon', 'stop'], { env: sandbox.env(), encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) log(`'drover daemon stop' exited with ${result.status ?? result.signal}: ${result.stderr || result.stdout}`);
}

async function main(options: Options): Promise<number> {
  for (const needed of [SUITE_INDEX, path.join(REPO, 'dist', 'extension.js')]) {
    if (!fs.existsSync(needed)) throw new Error(`${path.relative(REPO, needed)} is missing: run 'npm run build' first`);
  }
  if (options.vsix && !fs.existsSync(options.vsix)) throw new Error(`${options.vsix} is missing: run 'npm run package' first`);

  step('installing / locating the VS Code server');
  const entry = installServer();
  const executablePath = chromiumPath();
  const started = Date.now();
  const timer = new Promise<never>((_, reject) => {
    setTimeout(() => reject(new Error(`timed out after ${TIMEOUT_S} s while ${phase} (DROVER_VSCODE_TIMEOUT_S sets the limit)`)), TIMEOUT_S * 1000).unref();
  });

  const sandbox = new Sandbox();
  sandboxes.push(sandbox);
  sandbox.writeSettings();
  if (options.grep) process.env.DROVER_VSCODE_GREP = options.grep;

  const work = async (): Promise<number> => {
    if (options.vsix) {
      step(`installing ${path.relative(REPO, options.vsix)} into a fresh VS Code`);
      const install = spawnSync(process.execPath, [...serverArgs(entry, sandbox), '--install-extension', options.vsix], { env: sandbox.env(), encoding: 'utf8', timeout: 120_000 });
      process.stdout.write(install.stdout ?? '');
      if (install.status !== 0) throw new Error(`--install-extension failed (${install.status ?? install.signal}): ${install.stderr}`);
    }
    step('starting the VS Code server');
    const server = await startServer(entry, sandbox);
    log(`  listening on 127.0.0.1:${server.port}`);

    step(`starting Chromium (${executablePath})`);
    const context = await chromium.launchPersistentContext(sandbox.chromiumProfile, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
      // Playwright's own handlers would exit the process halfway through cleanUp.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
    contexts.push(context);
    fs.mkdirSync(SCREENSHOTS, { recursive: true });

    let code = 0;
    if (options.vsix) {
      step('UI pass against the installed .vsix');
      const problems = await uiPass(context, workbenchUrl(server.port, sandbox.workspace('workspace-vsix'), []), 'vsix-');
      const installed = fs.readdirSync(sandbox.extensions).filter((name) => name.startsWith(`${readPackageJson().publisher}.`));
      log(`  installed extensions: ${installed.join(', ') || 'none'}`);
      if (problems.length > 0 || installed.length === 0) code = 1;
    } else {
      step('running the extension test suite in the extension host');
      code = await runSuite(context, server.port, sandbox.workspace('workspace'));
      log(`  suite exited with ${code}`);
      step('UI pass: palette, activity bar, problems');
      const payload: [string, string][] = [['extensionDevelopmentPath', remoteUri(server.port, REPO)]];
      const problems = await uiPass(context, workbenchUrl(server.port, sandbox.workspace('workspace-ui'), payload), '');
      if (problems.length > 0) code = code || 1;
    }
    log(`${code === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return code;
  };
  return Promise.race([work(), timer]);
}

const sandboxes: Sandbox[] = [];
const contexts: BrowserContext[] = [];
let cleanedUp: Promise<void> | undefined;

/** On failure: every log of the run into LOG_FILE, and the extension hosts' errors on the console. */
function reportLogs(sandbox: Sandbox): void {
  const logsDir = path.join(sandbox.userData, 'logs');
  const logs = fs.readdirSync(logsDir, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.log'));
  for (const file of logs) {
    const text = fs.readFileSync(path.join(logsDir, file), 'utf8');
    record(`\n===== ${file}\n${text}`);
    if (path.basename(file) !== 'remoteexthost.log') continue;
    // An error line and the stack lines under it.
    const errors = text.split(/\n(?=\d{4}-\d\d-\d\d )/).filter((entry) => entry.includes(' [error] '));
    if (errors.length > 0) console.error(`----- errors in ${file}:\n${errors.slice(-10).join('\n').trimEnd()}`);
  }
}

function cleanUp(keep: boolean, failed: boolean): Promise<void> {
  cleanedUp ??= (async () => {
    for (const context of contexts.splice(0)) await context.close().catch(() => undefined);
    await stopServer();
    for (const sandbox of sandboxes.splice(0)) {
      stopDaemon(sandbox);
      if (failed) {
        try {
          reportLogs(sandbox);
        } catch (error) {
          console.error(`[vscode] could not read the logs: ${String(error)}`);
        }
      }
      if (keep) log(`kept ${sandbox.root}`);
      else fs.rmSync(sandbox.root, { recursive: true, force: true, maxRetries: 3 });
    }
    saveLog();
    if (failed) console.error(`[vscode] the whole log (workbench, server, extension hosts): ${path.relative(process.cwd(), LOG_FILE)}`);
  })();
  return cleanedUp;
}

let options: Options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (error) {
  console.error(`[vscode] ${(error as Error).message}`);
  process.exit(2);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    // A second Ctrl-C: leave now (the 'exit' handler still kills the server).
    if (cleanedUp) process.exit(130);
    log(`${signal}: stopping`);
    void cleanUp(options.keep, false).finally(() => process.exit(130));
  });
}
// Last resort if something exits the process before cleanUp ran: no server left behind.
process.once('exit', () => {
  try {
    saveLog();
  } catch {
    // the log is a convenience
  }
  if (serverProcess?.pid) {
    try {
      process.kill(-serverProcess.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

void main(options)
  .catch((error: unknown) => {
    console.error(`[vscode] ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  })
  .then(async (code) => {
    await cleanUp(options.keep, code !== 0);
    process.exit(code);
  });
