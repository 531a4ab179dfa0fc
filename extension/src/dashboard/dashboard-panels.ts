import * as vscode from 'vscode';
import {
  DASHBOARD_VIEW_TYPE,
  FINAL_STATES,
  type DaemonNotifications,
  type DashboardSnapshot,
  type DashboardState,
  type DashboardTarget,
  type FromWebviewMessage,
  type JobDetail,
  type JobView,
  type RenderReport,
  overlaidRuns,
  pointsAfter,
  type RunAction,
  type SeriesColumns,
  type ToWebviewMessage,
} from '../../../common/protocol';
import type { DroverContext } from '../context';
import { Emitter } from '../events';
import { MAX_POINTS, newSamples, parseTarget, readDashboardMetrics, readGpuSamples, readSeries, targetIncludes, targetKey, targetTitle } from './dashboard-data';
import { dashboardHtml, makeNonce } from './webview-html';

/** How often live metric points are sent on to a panel, batched (a run may log thousands a second). */
const POINT_FLUSH_MS = 100;
/** How often a run view reads on in its log while the run is going. */
const LOG_POLL_MS = 1000;
/** The end of a log a run view starts from. */
const LOG_TAIL_BYTES = 64 * 1024;

/**
 * The dashboard panels: one per target (an experiment, a run, a comparison, the GPU timeline),
 * opened or revealed by the commands, and brought back after a reload by the serializer from
 * the state the webview kept (the panels do not retain their context while hidden: a hidden
 * panel is rebuilt from a fresh snapshot when shown again).
 */
export class DashboardPanels implements vscode.Disposable {
  private readonly panels = new Map<string, DashboardPanel>();
  private readonly reports = new Emitter<{ key: string; report: RenderReport }>();
  /** What each panel's webview last said it shows (the integration tests read it). */
  readonly onDidRender = this.reports.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly ctx: DroverContext) {
    this.disposables.push(
      vscode.window.registerWebviewPanelSerializer(DASHBOARD_VIEW_TYPE, {
        deserializeWebviewPanel: async (panel, state: DashboardState | undefined) => {
          const target = parseTarget(state?.target);
          if (!target || this.panels.has(targetKey(target))) {
            panel.dispose();
            return;
          }
          this.adopt(panel, target);
        },
      }),
    );
  }

  /** Opens the panel for `target`, or reveals it when it is open already. */
  open(target: DashboardTarget): string {
    const key = targetKey(target);
    const open = this.panels.get(key);
    if (open) {
      open.panel.reveal();
      return key;
    }
    const panel = vscode.window.createWebviewPanel(DASHBOARD_VIEW_TYPE, targetTitle(target, [...this.ctx.store.jobs]), vscode.ViewColumn.Active, this.options());
    this.adopt(panel, target);
    return key;
  }

  /** The last render report of the panel `key` (see open()); undefined before its first render. */
  lastReport(key: string): RenderReport | undefined {
    return this.panels.get(key)?.lastReport;
  }

  get openKeys(): string[] {
    return [...this.panels.keys()];
  }

  dispose(): void {
    for (const panel of [...this.panels.values()]) panel.panel.dispose();
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
    this.reports.dispose();
  }

  private options(): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(this.ctx.extension.extensionUri, 'dist', 'webviews')], enableFindWidget: true };
  }

  private adopt(panel: vscode.WebviewPanel, target: DashboardTarget): void {
    const key = targetKey(target);
    panel.webview.options = this.options();
    const dashboard = new DashboardPanel(this.ctx, panel, target, (report) => this.reports.fire({ key, report }));
    this.panels.set(key, dashboard);
    panel.onDidDispose(() => {
      dashboard.dispose();
      this.panels.delete(key);
    });
  }
}

/** One panel: its page, its snapshot and the deltas it is sent after. */
class DashboardPanel {
  lastReport: RenderReport | undefined;
  /** Runs on the panel; live points and job changes of others are not sent. */
  private readonly jobIds = new Set<number>();
  /** The runs the page said were selected when it was ready: the snapshot carries their series. */
  private selected: number[] = [];
  private pendingPoints = new Map<string, SeriesColumns>();
  private flushTimer: NodeJS.Timeout | undefined;
  /** While a snapshot is being read: the newest time each series has in it, to drop the points it already holds. */
  private loading: Map<string, number> | undefined;
  private loadedUpTo = new Map<string, number>();
  /** GPU timeline: the time of each host's newest utilization sample the page has (undefined: the daemon does not sample). */
  private sampledUpTo: Map<string, number> | undefined;
  private log: { attempt: number; offset: number } | undefined;
  private logTimer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly ctx: DroverContext,
    readonly panel: vscode.WebviewPanel,
    readonly target: DashboardTarget,
    private readonly onReport: (report: RenderReport) => void,
  ) {
    const webview = panel.webview;
    const asset = (file: string) => webview.asWebviewUri(vscode.Uri.joinPath(ctx.extension.extensionUri, 'dist', 'webviews', file)).toString();
    webview.html = dashboardHtml({ cspSource: webview.cspSource, scriptUri: asset('dashboard.js'), styleUris: [asset('uPlot.min.css'), asset('dashboard.css')], nonce: makeNonce(), title: panel.title });
    this.disposables.push(
      webview.onDidReceiveMessage((message: FromWebviewMessage) => void this.receive(message)),
      ctx.store.onDidChange((change) => {
        // Read afresh after a (re)connection; while the daemon is away the page keeps what it shows.
        if (change.reloaded) {
          if (ctx.store.daemon.state === 'connected') void this.sendSnapshot().catch((error: unknown) => ctx.output.warn(`dashboard: ${error instanceof Error ? error.message : String(error)}`));
        }
        else {
          if (change.jobs.length) void this.jobsChanged(change.jobs);
          if (change.hosts) this.sendSamples();
        }
      }),
      ctx.store.onMetricPoint((event) => this.metricPoint(event)),
    );
  }

  dispose(): void {
    clearTimeout(this.flushTimer);
    clearInterval(this.logTimer);
    for (const disposable of this.disposables.splice(0)) disposable.dispose();
  }

  private post(message: ToWebviewMessage): void {
    void this.panel.webview.postMessage(message);
  }

  private async receive(message: FromWebviewMessage): Promise<void> {
    try {
      switch (message.type) {
        case 'ready':
          this.selected = Array.isArray(message.selected) ? message.selected.filter(Number.isInteger) : [];
          await this.sendSnapshot();
          break;
        case 'load': {
          const jobIds = message.jobIds.filter((id) => this.jobIds.has(id));
          const series = await readSeries(this.ctx.daemon.client(), jobIds, { maxPoints: message.maxPoints });
          // Live points held back meanwhile go first: the page, still waiting for this answer, keeps only those newer than it.
          this.flushPoints();
          this.post({ type: 'loaded', request: message.request, jobIds, series });
          break;
        }
        case 'rendered':
          this.lastReport = message;
          this.onReport(message);
          break;
        case 'range': {
          const jobIds = message.jobIds.filter((id) => this.jobIds.has(id));
          const series = await readSeries(this.ctx.daemon.client(), jobIds, { names: message.names, axis: message.axis, range: message.range, maxPoints: message.maxPoints });
          this.post({ type: 'series', series, range: { axis: message.axis, ...message.range } });
          break;
        }
        case 'action':
          await this.act(message.action, message.jobIds);
          break;
      }
    } catch (error) {
      this.ctx.reportError(error, message.type === 'action' ? `${message.action} from the dashboard` : 'update the dashboard');
    }
  }

  /** A button on the page: the same command the trees and the palette run. */
  private async act(action: RunAction, jobIds: number[]): Promise<void> {
    const commands: Record<RunAction, string> = {
      cancel: 'drover.cancelRun',
      rerun: 'drover.rerun',
      rerunWithParams: 'drover.rerunWithParams',
      showLogs: 'drover.showLogs',
      openRecord: 'drover.openRecord',
      openDiff: 'drover.openRunDiff',
      openRun: 'drover.openDashboard',
      compare: 'drover.compareRuns',
    };
    await vscode.commands.executeCommand(commands[action], jobIds);
  }

  /** Reads everything the panel shows afresh and sends it; live points that arrive meanwhile follow it. */
  private async sendSnapshot(): Promise<void> {
    const client = await this.ctx.requireDaemon('offer');
    if (!client) return;
    this.loading = new Map();
    try {
      const connected = this.ctx.store.daemon.state === 'connected';
      const known = connected ? [...this.ctx.store.jobs] : await client.request('drover/jobs', { limit: 1000 });
      let jobs: JobView[] = known.filter((job) => targetIncludes(this.target, job));
      let details: JobDetail[] = [];
      if (this.target.kind === 'run' || this.target.kind === 'compare') {
        const ids = this.target.kind === 'run' ? [this.target.jobId] : this.target.jobIds;
        details = await Promise.all(ids.map((id) => client.request('drover/job', { id })));
        jobs = details;
      }
      this.jobIds.clear();
      for (const job of jobs) this.jobIds.add(job.id);
      const ids = [...this.jobIds];
      const charted = this.target.kind === 'gpus' ? [] : this.target.kind === 'experiment' ? overlaidRuns(ids, this.selected) : ids;
      const { series, summaries } = this.target.kind === 'gpus' ? { series: [], summaries: [] } : await readDashboardMetrics(client, ids, charted);
      const gpuSamples = this.target.kind === 'gpus' ? await readGpuSamples(client, jobs, Date.now()) : undefined;
      this.sampledUpTo = gpuSamples && new Map();
      for (const entry of gpuSamples?.series ?? []) this.sampledUpTo!.set(entry.host, Math.max(this.sampledUpTo!.get(entry.host) ?? -Infinity, entry.at.at(-1) ?? -Infinity));
      this.loadedUpTo = new Map(series.map((entry) => [`${entry.jobId}\u0000${entry.name}`, entry.at.at(-1) ?? -Infinity]));
      const snapshot: DashboardSnapshot = {
        target: this.target,
        title: targetTitle(this.target, jobs),
        jobs,
        details,
        series,
        charted,
        summaries,
        maxPoints: MAX_POINTS,
        ...(gpuSamples && { gpuSamples }),
        ...(this.target.kind === 'run' && { logTail: await this.readLogTail(details[0]!, true) }),
      };
      this.panel.title = snapshot.title;
      this.post({ type: 'snapshot', ...snapshot });
      this.followLog(details[0]);
    } finally {
      this.loading = undefined;
    }
    this.flushPoints();
    // Probes that came while the snapshot was read.
    this.sendSamples();
  }

  /** GPU timeline, live: the samples of the host probes since those the page has. */
  private sendSamples(): void {
    if (this.target.kind !== 'gpus' || !this.sampledUpTo || this.loading) return;
    const series = newSamples(this.ctx.store.hosts, this.sampledUpTo);
    if (series.length) this.post({ type: 'samples', series });
  }

  private async jobsChanged(changed: readonly JobView[]): Promise<void> {
    const mine = changed.filter((job) => this.jobIds.has(job.id) || targetIncludes(this.target, job));
    if (!mine.length) return;
    for (const job of mine) this.jobIds.add(job.id);
    if (this.target.kind === 'run' || this.target.kind === 'compare') {
      const client = this.ctx.daemon.client();
      const details = await Promise.all(mine.map((job) => client.request('drover/job', { id: job.id })));
      this.post({ type: 'details', details });
      if (this.target.kind === 'run') this.followLog(details[0]);
    } else this.post({ type: 'jobs', jobs: mine });
  }

  private metricPoint(event: DaemonNotifications['drover/event/metric']): void {
    if (this.target.kind === 'gpus' || (!this.jobIds.has(event.jobId) && this.target.kind !== 'experiment')) return;
    const job = this.ctx.store.job(event.jobId);
    if (!this.jobIds.has(event.jobId) && !(job && targetIncludes(this.target, job))) return;
    const key = `${event.jobId}\u0000${event.name}`;
    let pending = this.pendingPoints.get(key);
    if (!pending) this.pendingPoints.set(key, (pending = { jobId: event.jobId, name: event.name, step: [], at: [], value: [], total: 0 }));
    pending.step.push(event.point.step);
    pending.at.push(event.point.at);
    pending.value.push(event.point.value);
    this.flushTimer ??= setTimeout(() => this.flushPoints(), POINT_FLUSH_MS);
  }

  private flushPoints(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.loading || !this.pendingPoints.size) return;
    const series: SeriesColumns[] = [];
    for (const [key, pending] of this.pendingPoints) {
      // Points the snapshot read already hold (they came while it was read) are not sent twice.
      const after = pointsAfter(pending, this.loadedUpTo.get(key) ?? -Infinity);
      if (after) series.push(after);
    }
    this.pendingPoints.clear();
    if (series.length) this.post({ type: 'points', series });
  }

  /** The end of the run's current attempt's output; later reads go on from there. */
  private async readLogTail(job: JobDetail, reset: boolean): Promise<string> {
    const attempt = job.attemptList.at(-1);
    if (!attempt) return '';
    if (reset || !this.log || this.log.attempt !== attempt.number) this.log = { attempt: attempt.number, offset: Math.max(0, attempt.logBytes - LOG_TAIL_BYTES) };
    let text = '';
    for (let reads = 0; reads < 64; reads++) {
      const chunk = await this.ctx.daemon.client().request('drover/logs', { id: job.id, attempt: attempt.number, offset: this.log.offset });
      text += chunk.data;
      this.log.offset += chunk.bytes;
      if (chunk.bytes === 0 || chunk.complete) break;
    }
    return text;
  }

  /** While the run goes on, reads on in its log each second; once more when it has ended. */
  private followLog(job: JobDetail | undefined): void {
    if (this.target.kind !== 'run' || !job) return;
    clearInterval(this.logTimer);
    this.logTimer = undefined;
    const readOn = async (latest: JobDetail) => {
      const before = this.log?.attempt;
      const data = await this.readLogTail(latest, false);
      if (data || before !== this.log?.attempt) this.post({ type: 'log', data, reset: before !== this.log?.attempt });
    };
    if (FINAL_STATES.includes(job.state)) {
      void readOn(job).catch(() => undefined);
      return;
    }
    this.logTimer = setInterval(() => {
      if (!this.panel.visible) return;
      void this.ctx.daemon
        .client()
        .request('drover/job', { id: job.id })
        .then(readOn)
        .catch(() => undefined);
    }, LOG_POLL_MS);
  }
}
