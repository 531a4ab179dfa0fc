import * as path from 'node:path';
import * as vscode from 'vscode';
import type { DaemonClient } from '../../../common/node/daemon-client';
import { CELL_METRICS_RENDERER_ID, FINAL_STATES, type CellEventsChunk, type JobView, type NotebookOutput, type OpenDashboardMessage } from '../../../common/protocol';
import { pickTarget, recordEnv } from '../commands/submit-commands';
import { config } from '../config';
import type { DroverContext } from '../context';
import { runLabel } from '../model/format';
import { isRunTarget, type RunTarget } from '../model/target';
import { notebookSpecWithSettings, scriptSpec } from '../script-spec';
import { cellSelection, cellStatusText, NotebookRunProgress, seriesOf, type CellScope } from './cell-progress';
import { metricsOutput, toCellOutputs } from './cell-outputs';

/** The notebook type of .ipynb files in VS Code (its built-in ipynb serializer). */
const JUPYTER_NOTEBOOK = 'jupyter-notebook';
/** Outputs are written into the notebook at most this often while a cell prints. */
const OUTPUT_FLUSH_MS = 150;
/** The tag the driver gives the cell it injects after `parameters` (drover_notebook.py). */
const INJECTED_TAG = 'injected-parameters';

/** A notebook run started from this window, and the open notebook it reports into. */
interface TrackedRun {
  notebook: vscode.Uri;
  progress: NotebookRunProgress;
  job: JobView;
  /** The notebook's cell count when it was submitted: once cells are added or removed, indices no longer match. */
  cellCount: number;
  /** Cells whose outputs wait to be written. */
  dirtyCells: Set<number>;
  flushTimer?: NodeJS.Timeout;
  /** Reads of the run's cell events, one after another. */
  reading: Promise<void>;
}

/**
 * "Run on cluster" for notebooks open in VS Code: submits the notebook (or some of its cells) as a
 * notebook job, then shows each cell's progress in its status bar and writes its outputs into the
 * open notebook as the daemon reports them.
 *
 * Outputs are written with WorkspaceEdit (NotebookEdit.replaceCells with the cell's own source and
 * metadata), not through a NotebookController: VS Code lets a controller write outputs only into
 * notebooks it is the selected kernel of, so that would take the notebook away from the user's
 * local Jupyter kernel for the length of a remote run. An edit leaves the kernel choice alone and
 * makes the outputs part of the notebook like any change (undo, save).
 */
export class NotebookRuns implements vscode.NotebookCellStatusBarItemProvider, vscode.Disposable {
  /** The latest run of each open notebook, by its URI. */
  private readonly runs = new Map<string, TrackedRun>();
  private readonly statusChanged = new vscode.EventEmitter<void>();
  readonly onDidChangeCellStatusBarItems = this.statusChanged.event;
  private readonly disposables: vscode.Disposable[] = [];
  private ticker: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: DroverContext) {
    this.disposables.push(vscode.notebooks.registerNotebookCellStatusBarItemProvider(JUPYTER_NOTEBOOK, this), this.statusChanged);
    // The handler goes with its connection: a reconnection brings a new client and a new handler.
    ctx.onConnected(async (client) => {
      client.on('drover/event/cells', (chunk) => this.onCells(client, chunk));
      await client.request('drover/subscribe', { topics: ['cells'] });
      // What happened while this window was not listening.
      for (const run of this.runs.values()) this.read(client, run);
    });
    this.disposables.push(
      ctx.store.onDidChange((change) => {
        for (const job of change.reloaded ? [...this.runs.values()].map((run) => ctx.store.job(run.job.id) ?? run.job) : change.jobs) this.onJob(job);
      }),
    );
    const messaging = vscode.notebooks.createRendererMessaging(CELL_METRICS_RENDERER_ID);
    this.disposables.push(
      messaging.onDidReceiveMessage(({ message }) => {
        const request = message as Partial<OpenDashboardMessage>;
        if (request.type === 'openDashboard' && typeof request.jobId === 'number') void vscode.commands.executeCommand('drover.openDashboard', request.jobId);
      }),
    );
  }

  /**
   * Submits a notebook's cells (all, some, or from one down) to the target given or picked, and
   * follows the run in the open notebook.
   */
  async run(notebook: vscode.NotebookDocument, scope: CellScope, given?: RunTarget): Promise<JobView | undefined> {
    if (notebook.uri.scheme !== 'file') {
      void vscode.window.showErrorMessage(`Drover: ${path.basename(notebook.uri.path)} is not on this machine's disk; save it to a folder first.`);
      return undefined;
    }
    // The daemon runs the file, so the file must say what the editor shows.
    if (notebook.isDirty && !(await notebook.save())) {
      void vscode.window.showErrorMessage(`Drover: ${path.basename(notebook.uri.fsPath)} was not saved, so it did not run.`);
      return undefined;
    }
    const client = await this.ctx.requireDaemon('start');
    if (!client) return undefined;
    const picked = given ? { target: given } : await this.pickWhere(client);
    if (!picked) return undefined;
    const target = picked.target ?? {};
    const folder = vscode.workspace.getWorkspaceFolder(notebook.uri)?.uri.fsPath ?? path.dirname(notebook.uri.fsPath);
    const cells = selectedCells(notebook, scope);
    if (cells.length === 0) {
      void vscode.window.showInformationMessage('Drover: there is no code to run in those cells.');
      return undefined;
    }
    const selection = cellSelection(scope);
    const env = selection !== undefined ? { DROVER_NOTEBOOK_CELLS: selection } : undefined;
    const specText = picked.spec
      ? notebookSpecWithSettings((await vscode.workspace.openTextDocument(picked.spec)).getText(), picked.spec.fsPath, { file: notebook.uri.fsPath, ...(env && { env }) })
      : scriptSpec({ file: notebook.uri.fsPath, workdir: folder, gpus: target.gpus ?? 0, python: config.python(), ...(env && { env }) });
    const result = await client.request('drover/submit', { specText, cwd: folder, env: recordEnv(), ...(target.host && { host: target.host }) });
    const job = result.jobs[0]!;
    this.ctx.store.addJobs(result.jobs);
    await this.ctx.addMyRuns(result.jobs);
    const previous = this.runs.get(notebook.uri.toString());
    if (previous) clearTimeout(previous.flushTimer);
    const run: TrackedRun = { notebook: notebook.uri, progress: new NotebookRunProgress(job.id, cells), job, cellCount: notebook.cellCount, dirtyCells: new Set(), reading: Promise.resolve() };
    this.runs.set(notebook.uri.toString(), run);
    this.onJob(this.ctx.store.job(job.id) ?? job);
    this.read(client, run);
    return job;
  }

  /**
   * Where to run: a host and GPU count (the scripts' picker), or, when the workspace has specs, the
   * settings of one of them (resources, placement, environment, parameters, sweep).
   */
  private async pickWhere(client: DaemonClient): Promise<{ target?: RunTarget; spec?: vscode.Uri } | undefined> {
    const specs = await vscode.workspace.findFiles('**/{*.drover.yaml,*.drover.yml,drover.yaml,drover.yml}', '**/node_modules/**', 50);
    if (specs.length > 0) {
      type Where = vscode.QuickPickItem & { spec?: vscode.Uri; host?: true };
      const items: Where[] = [
        { label: '$(server) A host and GPUs…', host: true },
        { label: "A spec's settings", kind: vscode.QuickPickItemKind.Separator },
        ...specs.map((uri) => ({ label: `$(file-code) ${vscode.workspace.asRelativePath(uri)}`, description: 'its resources, placement, env, params and sweep', spec: uri })),
      ];
      const where = await vscode.window.showQuickPick(items, { title: 'Drover: run the notebook where?' });
      if (!where) return undefined;
      if (where.spec) return { spec: where.spec };
    }
    const target = await pickTarget(this.ctx, client, false, undefined);
    return target && { target };
  }

  provideCellStatusBarItems(cell: vscode.NotebookCell): vscode.NotebookCellStatusBarItem[] {
    const run = this.runs.get(cell.notebook.uri.toString());
    const progress = run?.progress.cells.get(cell.index);
    if (!run || !progress) return [];
    const { text, tooltip } = cellStatusText(progress, run.job, Date.now());
    const item = new vscode.NotebookCellStatusBarItem(text, vscode.NotebookCellStatusBarAlignment.Left);
    item.tooltip = `${tooltip} (click for the run's log)`;
    item.command = { title: 'Show Logs', command: 'drover.showLogs', arguments: [run.job.id] };
    return [item];
  }

  /** The latest run of a notebook, if one was started from this window. */
  runOf(notebook: vscode.Uri): { job: JobView; progress: NotebookRunProgress } | undefined {
    const run = this.runs.get(notebook.toString());
    return run && { job: run.job, progress: run.progress };
  }

  /** The status bar text of each cell of a notebook's run, by cell index (what the user sees). */
  statusTexts(notebook: vscode.NotebookDocument): Map<number, string> {
    const texts = new Map<number, string>();
    for (const cell of notebook.getCells()) {
      const [item] = this.provideCellStatusBarItems(cell);
      if (item) texts.set(cell.index, item.text);
    }
    return texts;
  }

  /** Opens the executed notebook a run saved (the notebook's latest run, or the run given). */
  async openExecuted(jobId: number): Promise<void> {
    const file = await this.executedNotebook(jobId);
    if (!file) return;
    await vscode.window.showNotebookDocument(await vscode.workspace.openNotebookDocument(vscode.Uri.file(file)), { preview: false });
  }

  /**
   * Copies a run's outputs from its executed notebook into the open notebook, cell by cell (the
   * cell the run injected after `parameters` is not the user's, so it is skipped).
   */
  async applyOutputs(jobId: number, notebook: vscode.NotebookDocument): Promise<boolean> {
    const file = await this.executedNotebook(jobId);
    if (!file) return false;
    const executed = JSON.parse(Buffer.from(await vscode.workspace.fs.readFile(vscode.Uri.file(file))).toString('utf8')) as {
      cells: { cell_type: string; metadata?: { tags?: string[] }; outputs?: NotebookOutput[] }[];
    };
    const cells = executed.cells.filter((cell) => !cell.metadata?.tags?.includes(INJECTED_TAG));
    if (cells.length !== notebook.cellCount) {
      void vscode.window.showWarningMessage(`Drover: the notebook has ${notebook.cellCount} cells and the run's has ${cells.length}; open the executed notebook instead.`, 'Open Executed Notebook').then((choice) => {
        if (choice) void this.openExecuted(jobId);
      });
      return false;
    }
    const edits = cells.flatMap((cell, index) => (cell.cell_type === 'code' && notebook.cellAt(index).kind === vscode.NotebookCellKind.Code ? [withOutputs(notebook.cellAt(index), toCellOutputs(cell.outputs ?? []))] : []));
    const edit = new vscode.WorkspaceEdit();
    edit.set(notebook.uri, edits);
    return vscode.workspace.applyEdit(edit);
  }

  dispose(): void {
    clearInterval(this.ticker);
    for (const run of this.runs.values()) clearTimeout(run.flushTimer);
    for (const disposable of this.disposables) disposable.dispose();
  }

  private async executedNotebook(jobId: number): Promise<string | undefined> {
    const client = await this.ctx.requireDaemon('offer');
    if (!client) return undefined;
    const detail = await client.request('drover/job', { id: jobId });
    const file = detail.attemptList.at(-1)?.notebookPath;
    if (!file) void vscode.window.showInformationMessage(`Drover: run ${runLabel(detail)} has no executed notebook${detail.notebook === undefined ? ' (it is not a notebook run)' : ' yet'}.`);
    return file;
  }

  private onJob(job: JobView): void {
    const run = [...this.runs.values()].find((each) => each.job.id === job.id);
    if (!run) return;
    const ended = FINAL_STATES.includes(job.state) && !FINAL_STATES.includes(run.job.state);
    run.job = job;
    if (job.attempts > run.progress.attempt && run.progress.attempt > 0) {
      // A retry: every cell runs again.
      run.progress.restart(job.attempts);
      for (const cell of run.progress.requested) run.dirtyCells.add(cell);
    }
    if (ended) {
      const client = this.ctx.daemon.state.kind === 'connected' ? this.ctx.daemon.state.client : undefined;
      // The last events first, then the cells it never reached are settled.
      if (client) this.read(client, run);
      run.reading = run.reading.then(() => {
        run.progress.settle(job);
        this.statusChanged.fire();
        this.offerExecuted(run);
      });
    }
    this.updateTicker();
    this.statusChanged.fire();
  }

  private offerExecuted(run: TrackedRun): void {
    const name = path.basename(run.notebook.fsPath);
    const outcome = run.job.state === 'succeeded' ? 'ran' : run.job.state;
    void vscode.window.showInformationMessage(`Drover: ${name} ${outcome} on ${run.job.host ?? 'the cluster'} (run ${run.job.id}).`, 'Open Executed Notebook', 'Open Dashboard').then((choice) => {
      if (choice === 'Open Executed Notebook') void this.openExecuted(run.job.id);
      if (choice === 'Open Dashboard') void vscode.commands.executeCommand('drover.openDashboard', run.job.id);
    });
  }

  /** New events of a tracked run: applied in order, a gap filled from the daemon first. */
  private onCells(client: DaemonClient, chunk: CellEventsChunk): void {
    const run = [...this.runs.values()].find((each) => each.job.id === chunk.jobId);
    if (!run) return;
    run.reading = run.reading.then(async () => {
      if (chunk.attempt < run.progress.attempt) return;
      if (chunk.attempt > run.progress.attempt) run.progress.restart(chunk.attempt);
      if (chunk.offset > run.progress.offset) await this.readNow(client, run, chunk.offset);
      if (chunk.offset !== run.progress.offset) return; // already had these
      this.apply(run, chunk);
    });
  }

  /** Reads what the daemon has of a run's events beyond what was applied. */
  private read(client: DaemonClient, run: TrackedRun): void {
    run.reading = run.reading.then(() => this.readNow(client, run, Infinity)).catch((error: unknown) => {
      this.ctx.output.warn(`reading the cell events of run ${run.job.id}: ${error instanceof Error ? error.message : String(error)}`);
    });
  }

  private async readNow(client: DaemonClient, run: TrackedRun, until: number): Promise<void> {
    while (run.progress.offset < until) {
      const chunk = await client.request('drover/cells', { id: run.job.id, offset: run.progress.offset, ...(run.progress.attempt > 0 && { attempt: run.progress.attempt }) });
      if (run.progress.attempt === 0) run.progress.attempt = chunk.attempt;
      if (chunk.nextOffset === run.progress.offset) return;
      this.apply(run, chunk);
    }
  }

  private apply(run: TrackedRun, chunk: CellEventsChunk): void {
    for (const cell of run.progress.apply(chunk.events)) run.dirtyCells.add(cell);
    run.progress.offset = chunk.nextOffset;
    this.statusChanged.fire();
    this.updateTicker();
    if (run.dirtyCells.size && !run.flushTimer) run.flushTimer = setTimeout(() => void this.flushOutputs(run), OUTPUT_FLUSH_MS);
  }

  /** Writes the outputs of the cells that changed into the open notebook, in one edit. */
  private async flushOutputs(run: TrackedRun): Promise<void> {
    run.flushTimer = undefined;
    const notebook = vscode.workspace.notebookDocuments.find((document) => document.uri.toString() === run.notebook.toString());
    const cells = [...run.dirtyCells];
    run.dirtyCells.clear();
    // Closed, or cells added or removed since: the outputs stay with the run (Apply Run Outputs).
    if (!notebook || notebook.cellCount !== run.cellCount) return;
    const edits = cells.flatMap((index) => {
      const progress = run.progress.cells.get(index);
      if (!progress || index >= notebook.cellCount) return [];
      const outputs = toCellOutputs(progress.outputs);
      if (progress.points.length) outputs.push(metricsOutput({ jobId: run.job.id, runLabel: runLabel(run.job), cell: index, series: seriesOf(progress.points) }));
      return [withOutputs(notebook.cellAt(index), outputs)];
    });
    if (!edits.length) return;
    const edit = new vscode.WorkspaceEdit();
    edit.set(notebook.uri, edits);
    await vscode.workspace.applyEdit(edit);
  }

  /** While a cell runs, its elapsed time in the status bar goes up each second. */
  private updateTicker(): void {
    const running = [...this.runs.values()].some((run) => [...run.progress.cells.values()].some((cell) => cell.state === 'running' || cell.state === 'queued') && !FINAL_STATES.includes(run.job.state));
    if (running && !this.ticker) this.ticker = setInterval(() => this.statusChanged.fire(), 1000);
    if (!running && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = undefined;
    }
  }
}

/** The cell with new outputs, its source, metadata and language kept (see NotebookRuns on why it is a replacement). */
function withOutputs(cell: vscode.NotebookCell, outputs: vscode.NotebookCellOutput[]): vscode.NotebookEdit {
  const data = new vscode.NotebookCellData(cell.kind, cell.document.getText(), cell.document.languageId);
  data.metadata = cell.metadata;
  data.outputs = outputs;
  if (cell.executionSummary) data.executionSummary = cell.executionSummary;
  return vscode.NotebookEdit.replaceCells(new vscode.NotebookRange(cell.index, cell.index + 1), [data]);
}

/** The code cells a scope names, in order (what the driver will run). */
function selectedCells(notebook: vscode.NotebookDocument, scope: CellScope): number[] {
  const code = notebook.getCells().filter((cell) => cell.kind === vscode.NotebookCellKind.Code && cell.document.getText().trim() !== '').map((cell) => cell.index);
  if (scope.kind === 'all') return code;
  if (scope.kind === 'from') return code.filter((index) => index >= scope.cell);
  return code.filter((index) => scope.cells.includes(index));
}

/** The notebook a command is about: a cell's (cell menus pass the cell), a URI's, or the active one. */
function notebookOf(arg: unknown): vscode.NotebookDocument | undefined {
  if (isCell(arg)) return arg.notebook;
  if (arg instanceof vscode.Uri) return vscode.workspace.notebookDocuments.find((document) => document.uri.toString() === arg.toString());
  return vscode.window.activeNotebookEditor?.notebook;
}

function isCell(arg: unknown): arg is vscode.NotebookCell {
  return typeof arg === 'object' && arg !== null && 'notebook' in arg && 'index' in arg && 'document' in arg;
}

type Handler = (...args: unknown[]) => Promise<unknown>;

/**
 * The commands of notebook runs, by id, with what each is doing (for error messages); the run
 * commands take a target as an argument to skip the pick (tests, keybindings).
 */
export function notebookCommands(runs: NotebookRuns): Record<string, [Handler, string]> {
  const targetIn = (args: unknown[]) => args.find(isRunTarget);
  const requireNotebook = (arg: unknown) => {
    const notebook = notebookOf(arg);
    if (!notebook) void vscode.window.showErrorMessage('Drover: open a Jupyter notebook (.ipynb) to run it on a cluster.');
    return notebook;
  };
  return {
    'drover.runNotebookOnCluster': [
      async (...args) => {
        const notebook = requireNotebook(args[0]);
        return notebook && runs.run(notebook, { kind: 'all' }, targetIn(args));
      },
      'run the notebook',
    ],
    'drover.runCellsOnCluster': [
      async (...args) => {
        const notebook = requireNotebook(args[0]);
        if (!notebook) return undefined;
        // The clicked cell, or all the selected cells when it is one of them.
        const editor = vscode.window.activeNotebookEditor?.notebook === notebook ? vscode.window.activeNotebookEditor : undefined;
        const selected = (editor?.selections ?? []).flatMap((range) => Array.from({ length: range.end - range.start }, (_, offset) => range.start + offset));
        const clicked = isCell(args[0]) ? args[0].index : undefined;
        const cells = clicked === undefined ? selected : selected.includes(clicked) ? selected : [clicked];
        return runs.run(notebook, { kind: 'cells', cells }, targetIn(args));
      },
      'run the cells',
    ],
    'drover.runFromCellOnCluster': [
      async (...args) => {
        const notebook = requireNotebook(args[0]);
        const editor = vscode.window.activeNotebookEditor;
        const cell = isCell(args[0]) ? args[0].index : (editor?.selections[0]?.start ?? 0);
        return notebook && runs.run(notebook, { kind: 'from', cell }, targetIn(args));
      },
      'run the cells',
    ],
    'drover.openExecutedNotebook': [
      async (...args) => {
        const jobId = typeof args[0] === 'number' ? args[0] : lastRun(runs, args[0]);
        return jobId === undefined ? undefined : runs.openExecuted(jobId);
      },
      'open the executed notebook',
    ],
    'drover.applyRunOutputs': [
      async (...args) => {
        const notebook = requireNotebook(args[0] instanceof vscode.Uri ? args[0] : undefined);
        const jobId = typeof args[1] === 'number' ? args[1] : notebook && lastRun(runs, notebook.uri);
        return notebook && jobId !== undefined ? runs.applyOutputs(jobId, notebook) : undefined;
      },
      "apply the run's outputs",
    ],
  };
}

function lastRun(runs: NotebookRuns, arg: unknown): number | undefined {
  const notebook = notebookOf(arg);
  const jobId = notebook && runs.runOf(notebook.uri)?.job.id;
  if (jobId === undefined) void vscode.window.showInformationMessage('Drover: this notebook has not been run on a cluster from this window; open the run from the Runs view.');
  return jobId;
}
