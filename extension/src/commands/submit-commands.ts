import { createHash } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { DaemonClient } from '../../../common/node/daemon-client';
import type { HostView, SubmitParams, SubmitResult } from '../../../common/protocol';
import { config } from '../config';
import type { DroverContext } from '../context';
import { gpuModel } from '../model/clusters';
import { runLabel } from '../model/format';
import { describeTarget, isRunTarget, parseTarget, type RunTarget } from '../model/target';
import { runnableKind, scriptSpec } from '../script-spec';

const TARGET_KEY = 'drover.target:';
const UNSAVED_CHOICE_KEY = 'drover.unsavedChoice';
type UnsavedChoice = 'save' | 'snapshot';

/** Submits a spec with its own settings (the active editor's, or the one given). */
export const submitSpec = (ctx: DroverContext) => async (...args: unknown[]) => {
  const uri = fileArgument(args[0]) ?? activeFile();
  if (!uri || runnableKind(uri.fsPath) !== 'spec') {
    void vscode.window.showErrorMessage('Drover: open a spec (*.drover.yaml) to submit it, or right-click one in the explorer.');
    return undefined;
  }
  return runFile(ctx, uri, { useSpec: true }, false);
};

/** Runs the active file on its remembered target, or `drover.defaultTarget`, or asks. */
export const runCurrentFile = (ctx: DroverContext) => async (...args: unknown[]) => {
  const uri = fileArgument(args[0]) ?? activeFile();
  if (!uri) {
    void vscode.window.showErrorMessage('Drover: open a .py, .sh, .ipynb or *.drover.yaml file to run it on a cluster.');
    return undefined;
  }
  return runFile(ctx, uri, isRunTarget(args[1]) ? args[1] : undefined, false);
};

/**
 * Explorer, editor and palette: runs a file on the target the user picks (the remembered one
 * first). A target passed as the second argument skips the pick (tests, keybindings).
 */
export const runOnCluster = (ctx: DroverContext) => async (...args: unknown[]) => {
  const uri = fileArgument(args[0]) ?? activeFile();
  if (!uri) {
    void vscode.window.showErrorMessage('Drover: choose a .py, .sh, .ipynb or *.drover.yaml file to run on a cluster.');
    return undefined;
  }
  return runFile(ctx, uri, isRunTarget(args[1]) ? args[1] : undefined, true);
};

/**
 * "Preview sbatch": opens the sbatch scripts the spec (the editor's text) becomes on a SLURM
 * cluster of the pool, without submitting anything. A cluster given as the second argument
 * skips the pick (tests); with one cluster in the pool, it is used.
 */
export const previewSbatch = (ctx: DroverContext) => async (...args: unknown[]) => {
  const uri = fileArgument(args[0]) ?? activeFile();
  if (!uri || runnableKind(uri.fsPath) !== 'spec') {
    void vscode.window.showErrorMessage('Drover: open a spec (*.drover.yaml) to preview its sbatch scripts.');
    return undefined;
  }
  const client = await ctx.requireDaemon('start');
  if (!client) return undefined;
  const clusters = (await client.request('drover/hosts', {})).filter((host) => host.kind === 'slurm').map((host) => host.name);
  let host = typeof args[1] === 'string' ? args[1] : clusters.length === 1 ? clusters[0] : undefined;
  if (host === undefined) {
    if (clusters.length === 0) {
      void vscode.window.showErrorMessage('Drover: no SLURM cluster in the pool. Add one with `drover hosts add NAME --slurm [--via LOGIN-ALIAS]`.');
      return undefined;
    }
    host = await vscode.window.showQuickPick(clusters, { title: 'Preview sbatch for which SLURM cluster?' });
    if (host === undefined) return undefined;
  }
  const specText = (await vscode.workspace.openTextDocument(uri)).getText();
  const folder = vscode.workspace.getWorkspaceFolder(uri)?.uri.fsPath ?? path.dirname(uri.fsPath);
  const { scripts } = await client.request('drover/sbatchPreview', { specText, specPath: uri.fsPath, cwd: folder, host });
  const content = scripts.map(({ job, script }) => `# ---- ${job} on ${host}: run ids and upstream job ids are placeholders until submitted\n${script}`).join('\n');
  const document = await vscode.workspace.openTextDocument({ language: 'shellscript', content });
  await vscode.window.showTextDocument(document, { preview: true });
  return scripts;
};

/** Forgets the remembered answers: unsaved-changes choice and per-file targets. */
export const resetRememberedChoices = (ctx: DroverContext) => async () => {
  await ctx.extension.globalState.update(UNSAVED_CHOICE_KEY, undefined);
  for (const key of ctx.extension.workspaceState.keys()) if (key.startsWith(TARGET_KEY)) await ctx.extension.workspaceState.update(key, undefined);
  void vscode.window.showInformationMessage('Drover: remembered run targets and the unsaved-changes choice are forgotten.');
};

/** Applies `drover.run.rememberUnsavedChoice` turning off: the remembered answer goes too. */
export function forgetUnsavedChoiceWhenDisabled(ctx: DroverContext): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration('drover.run.rememberUnsavedChoice') && !config.rememberUnsavedChoice()) {
      void ctx.extension.globalState.update(UNSAVED_CHOICE_KEY, undefined);
    }
  });
}

async function runFile(ctx: DroverContext, uri: vscode.Uri, given: RunTarget | undefined, ask: boolean): Promise<SubmitResult | undefined> {
  const kind = runnableKind(uri.fsPath);
  if (!kind) {
    void vscode.window.showErrorMessage(`Drover runs .py, .sh and .ipynb files and *.drover.yaml specs, not ${path.basename(uri.fsPath)}.`);
    return undefined;
  }
  if (uri.scheme !== 'file') {
    void vscode.window.showErrorMessage(`Drover: ${path.basename(uri.path)} is not on this machine's disk (${uri.scheme}:); save it to a folder first.`);
    return undefined;
  }
  const version = await settleUnsaved(ctx, uri);
  if (!version) return undefined;
  const forSpec = kind === 'spec';
  const remembered = ctx.extension.workspaceState.get<RunTarget>(TARGET_KEY + uri.toString());
  const fallback = parseTarget(config.defaultTarget());
  let target = given ?? (ask ? undefined : (remembered ?? (forSpec ? { useSpec: true } : fallback)));
  const client = await ctx.requireDaemon('start');
  if (!client) return undefined;
  if (!target) {
    target = await pickTarget(ctx, client, forSpec, remembered ?? fallback);
    if (!target) return undefined;
  }
  if (!given) await ctx.extension.workspaceState.update(TARGET_KEY + uri.toString(), target);
  const folder = vscode.workspace.getWorkspaceFolder(uri)?.uri.fsPath ?? path.dirname(uri.fsPath);
  let params: SubmitParams;
  if (forSpec) {
    // The editor's text, saved or not: a spec is sent as text, so it is its own snapshot.
    const specText = (await vscode.workspace.openTextDocument(uri)).getText();
    params = { specText, specPath: uri.fsPath, cwd: folder, ...(target.host && !target.useSpec && { host: target.host }) };
  } else {
    const file = version === 'snapshot' ? await snapshotOf(uri) : uri.fsPath;
    const name = path.basename(uri.fsPath).replace(/\.(py|sh|ipynb)$/, '') || 'run';
    params = { specText: scriptSpec({ file, name, workdir: folder, gpus: target.gpus ?? 0, python: config.python() }), cwd: folder, ...(target.host && { host: target.host }) };
  }
  params.env = recordEnv();
  const result = await client.request('drover/submit', params);
  ctx.store.addJobs(result.jobs);
  await ctx.addMyRuns(result.jobs);
  announce(ctx, result, `${path.basename(uri.fsPath)} ${describeTarget(target, forSpec)}`);
  return result;
}

/** What the daemon records of the client's environment (it redacts secrets before storing). */
export function recordEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !name.startsWith('VSCODE_') && !name.startsWith('ELECTRON_')) env[name] = value;
  return env;
}

function announce(ctx: DroverContext, result: SubmitResult, what: string): void {
  const jobs = result.jobs;
  const runs = jobs.length === 1 ? `run ${runLabel(jobs[0]!)}` : `${jobs.length} runs (${jobs[0]?.id}–${jobs.at(-1)?.id})`;
  void vscode.window.showInformationMessage(`Drover: submitted ${what}: ${runs}.`, 'Show Logs', 'Show Queue').then((choice) => {
    if (choice === 'Show Logs' && jobs[0]) void ctx.logs.show(jobs[0]);
    if (choice === 'Show Queue') void vscode.commands.executeCommand('drover.queue.focus');
  });
}

/**
 * The editor's text of a script, written beside it under a name made of its content's hash, so
 * it runs from the same folder (its imports resolve as the script's would) and the run, a rerun
 * and a remote host all see exactly that text. The file is left for reruns; `.drover-snapshot-*`
 * can go in .gitignore.
 */
async function snapshotOf(uri: vscode.Uri): Promise<string> {
  const text = (await vscode.workspace.openTextDocument(uri)).getText();
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  const file = path.join(path.dirname(uri.fsPath), `.drover-snapshot-${hash}-${path.basename(uri.fsPath)}`);
  await vscode.workspace.fs.writeFile(vscode.Uri.file(file), new TextEncoder().encode(text));
  return file;
}

/**
 * The exact editor content is what runs, so unsaved edits need a decision: save them, or run a
 * snapshot of them and leave the file unsaved. The answer can be remembered (globalState) until `drover.run.rememberUnsavedChoice`
 * is turned off or the remembered choices are reset. Undefined when the user backs out.
 */
export async function settleUnsaved(ctx: DroverContext, uri: vscode.Uri): Promise<'current' | 'snapshot' | undefined> {
  const key = uri.toString();
  const text = vscode.workspace.textDocuments.find((document) => document.uri.toString() === key);
  const notebook = vscode.workspace.notebookDocuments.find((document) => document.uri.toString() === key);
  const dirty = text?.isDirty || notebook?.isDirty;
  if (!dirty) return 'current';
  const name = path.basename(uri.fsPath);
  let choice = config.rememberUnsavedChoice() ? ctx.extension.globalState.get<UnsavedChoice>(UNSAVED_CHOICE_KEY) : undefined;
  if (!choice) {
    const SAVE = 'Save and Run';
    const SAVED = 'Run Without Saving';
    const ALWAYS_SAVE = 'Save and Run (remember my choice)';
    const ALWAYS_SAVED = 'Run Without Saving (remember my choice)';
    const answer = await vscode.window.showWarningMessage(
      `${name} has unsaved changes.`,
      { modal: true, detail: 'Either way the run uses what the editor shows: saved first, or as a snapshot beside the file (the run records the git state of its folder too).' },
      SAVE,
      SAVED,
      ALWAYS_SAVE,
      ALWAYS_SAVED,
    );
    if (!answer) return undefined;
    choice = answer === SAVE || answer === ALWAYS_SAVE ? 'save' : 'snapshot';
    if ((answer === ALWAYS_SAVE || answer === ALWAYS_SAVED) && config.rememberUnsavedChoice()) await ctx.extension.globalState.update(UNSAVED_CHOICE_KEY, choice);
  }
  // A notebook's unsaved cells have no text form here: it is saved to run.
  if (choice === 'snapshot' && !notebook) return 'snapshot';
  const saved = await vscode.workspace.save(uri);
  if (!saved) {
    void vscode.window.showErrorMessage(`Drover: ${name} was not saved, so it did not run.`);
    return undefined;
  }
  return 'current';
}

interface TargetPick extends vscode.QuickPickItem {
  target?: RunTarget;
}

/** The host (or any), then for a script the number of GPUs; the remembered target comes first. */
export async function pickTarget(ctx: DroverContext, client: DaemonClient, forSpec: boolean, remembered: RunTarget | undefined): Promise<RunTarget | undefined> {
  let hosts: HostView[];
  try {
    hosts = await client.request('drover/hosts', {});
  } catch {
    hosts = [...ctx.store.hosts];
  }
  const hostItems: TargetPick[] = hosts.map((host) => ({
    label: `$(${host.kind === 'local' ? 'vm' : 'remote'}) ${host.name}`,
    description: hostSummary(host),
    target: { host: host.name },
  }));
  const first: TargetPick[] = forSpec
    ? [{ label: "$(settings) The spec's own settings", description: 'placement and resources as written', target: { useSpec: true } }]
    : [{ label: '$(globe) Any host', description: 'the scheduler places it', target: {} }];
  let items: TargetPick[] = [...first, { label: 'Hosts', kind: vscode.QuickPickItemKind.Separator }, ...hostItems];
  if (remembered) {
    const last = items.find((item) => item.target && placeKey(item.target, forSpec) === placeKey(remembered, forSpec));
    if (last) items = [{ ...last, detail: `last used: ${describeTarget(remembered, forSpec)}`, target: remembered }, ...items.filter((item) => item !== last)];
  }
  const where = await vscode.window.showQuickPick(items, { title: forSpec ? 'Drover: submit the spec where?' : 'Drover: run where?', matchOnDescription: true });
  if (!where?.target) return undefined;
  if (forSpec) return where.target;
  const host = hosts.find((candidate) => candidate.name === where.target!.host);
  const most = Math.max(1, ...(host ? [host.gpus.length] : hosts.map((candidate) => candidate.gpus.length)));
  const counts = [...new Set([0, 1, 2, 4, 8].filter((count) => count <= most).concat(most))].sort((a, b) => a - b);
  let gpuItems: (vscode.QuickPickItem & { count: number })[] = counts.map((count) => ({
    label: count === 0 ? '$(circle-slash) No GPU (CPU only)' : `$(circuit-board) ${count} GPU${count === 1 ? '' : 's'}`,
    count,
  }));
  const rememberedCount = where.target === remembered ? remembered.gpus : undefined;
  if (rememberedCount !== undefined) {
    const last = gpuItems.find((item) => item.count === rememberedCount);
    if (last) gpuItems = [{ ...last, description: 'last used' }, ...gpuItems.filter((item) => item !== last)];
  }
  const gpus = await vscode.window.showQuickPick(gpuItems, { title: `Drover: how many GPUs${host ? ` on ${host.name}` : ''}?` });
  if (!gpus) return undefined;
  return { ...(where.target.host !== undefined && { host: where.target.host }), gpus: gpus.count };
}

/** Where a target places runs, ignoring the GPU count: what the first pick chooses. */
function placeKey(target: RunTarget, forSpec: boolean): string {
  if (target.host !== undefined && !(forSpec && target.useSpec)) return `host:${target.host}`;
  return forSpec ? 'spec' : 'any';
}

function hostSummary(host: HostView): string {
  if (host.state === 'unreachable') return `unreachable: ${host.message ?? ''}`;
  if (!host.gpus.length) return 'no GPUs';
  const free = host.gpus.filter((gpu) => gpu.jobId === undefined && gpu.foreignPids.length === 0).length;
  const models = [...new Set(host.gpus.map((gpu) => gpuModel(gpu.name)))].join(', ');
  return `${free}/${host.gpus.length} GPUs free · ${models}`;
}

/** A file Uri from a command's first argument (explorer and editor menus pass one). */
/** A Uri, or a URI string (as a language server's code lens passes it). */
function fileArgument(arg: unknown): vscode.Uri | undefined {
  if (typeof arg === 'string' && /^[a-z][\w+.-]*:/i.test(arg)) return vscode.Uri.parse(arg);
  return arg instanceof vscode.Uri ? arg : undefined;
}

function activeFile(): vscode.Uri | undefined {
  const text = vscode.window.activeTextEditor?.document.uri;
  // A notebook cell's editor names the cell; what runs is its notebook.
  if (text && text.scheme !== 'vscode-notebook-cell') return text;
  return vscode.window.activeNotebookEditor?.notebook.uri ?? text;
}
