import { FINAL_STATES, type DaemonNotifications, type HostView, type JobView, type MetricSeries } from '../../../common/protocol';
import { Emitter, type Disposable } from '../events';
import { pickKeyMetric, type KeyMetric } from '../model/runs';
import type { DaemonState } from '../model/status-text';

export interface StoreChange {
  /** Runs that changed (empty on a reload, which changes everything). */
  jobs: JobView[];
  hosts: boolean;
  /** Runs whose key metric changed. */
  metrics: number[];
  /** Everything was read afresh (a (re)connection) or the daemon's state changed. */
  reloaded: boolean;
}

/**
 * What the views show, as the daemon last told it: runs, hosts, key metrics and whether the
 * daemon answers. The daemon owns all of it; this is a cache fed by its events, shared by the
 * three trees, the status bar and the notifications, so nothing polls per view.
 */
export class RunStore implements Disposable {
  private readonly jobMap = new Map<number, JobView>();
  private readonly hostMap = new Map<string, HostView>();
  private readonly keyMetricMap = new Map<number, KeyMetric>();
  private readonly metricsAsked = new Set<number>();
  /** Configured host aliases the daemon refused, and why (shown in the Clusters view). */
  private readonly refusedHosts = new Map<string, string>();
  private daemonState: DaemonState = 'connecting';
  private daemonReason: string | undefined;
  private loading = false;
  private readonly changed = new Emitter<StoreChange>();
  readonly onDidChange = this.changed.event;
  private readonly metricPoints = new Emitter<DaemonNotifications['drover/event/metric']>();
  /** Every metric point as the daemon reports it (the dashboards draw them live). */
  readonly onMetricPoint = this.metricPoints.event;

  get daemon(): { state: DaemonState; reason: string | undefined } {
    return { state: this.daemonState, reason: this.daemonReason };
  }

  get jobs(): Iterable<JobView> {
    return this.jobMap.values();
  }

  get hosts(): Iterable<HostView> {
    return this.hostMap.values();
  }

  get hostRefusals(): ReadonlyMap<string, string> {
    return this.refusedHosts;
  }

  job(id: number): JobView | undefined {
    return this.jobMap.get(id);
  }

  keyMetric(id: number): KeyMetric | undefined {
    return this.keyMetricMap.get(id);
  }

  setDaemonState(state: DaemonState, reason?: string): void {
    if (state === this.daemonState && reason === this.daemonReason) return;
    this.daemonState = state;
    this.daemonReason = reason;
    this.fire({ jobs: [], hosts: true, metrics: [], reloaded: true });
  }

  /**
   * Forgets runs and hosts before they are read afresh; events that arrive meanwhile are applied
   * in the order they come (each newer than what came before), and listeners hear once, at the end.
   */
  beginReload(): void {
    this.loading = true;
    this.jobMap.clear();
    this.hostMap.clear();
    for (const id of this.metricsAsked) if (!this.keyMetricMap.has(id)) this.metricsAsked.delete(id);
  }

  endReload(): void {
    this.loading = false;
    // Live runs' metrics may have moved while we were away: ask again when they are shown.
    for (const job of this.jobMap.values()) if (!FINAL_STATES.includes(job.state)) this.metricsAsked.delete(job.id);
    this.fire({ jobs: [], hosts: true, metrics: [], reloaded: true });
  }

  upsertJobs(jobs: readonly JobView[]): void {
    for (const job of jobs) this.jobMap.set(job.id, job);
    if (jobs.length) this.fire({ jobs: [...jobs], hosts: false, metrics: [], reloaded: false });
  }

  /**
   * Runs a request answered with (a submission's): only those not known yet, since events about
   * them may have overtaken the answer and are newer.
   */
  addJobs(jobs: readonly JobView[]): void {
    this.upsertJobs(jobs.filter((job) => !this.jobMap.has(job.id)));
  }

  removeJobs(ids: readonly number[]): void {
    const removed = ids.map((id) => this.jobMap.get(id)).filter((job): job is JobView => job !== undefined);
    for (const job of removed) {
      this.jobMap.delete(job.id);
      this.keyMetricMap.delete(job.id);
    }
    if (removed.length) this.fire({ jobs: [], hosts: false, metrics: [], reloaded: true });
  }

  upsertHosts(hosts: readonly HostView[]): void {
    for (const host of hosts) this.hostMap.set(host.name, host);
    this.fire({ jobs: [], hosts: true, metrics: [], reloaded: false });
  }

  replaceHosts(hosts: readonly HostView[]): void {
    this.hostMap.clear();
    this.upsertHosts(hosts);
  }

  setHostRefusal(alias: string, reason: string | undefined): void {
    if (reason === undefined) this.refusedHosts.delete(alias);
    else this.refusedHosts.set(alias, reason);
    this.fire({ jobs: [], hosts: true, metrics: [], reloaded: false });
  }

  /** A metric point as it is reported: it moves the key metric when it belongs to its series. */
  applyMetric(event: DaemonNotifications['drover/event/metric']): void {
    this.metricPoints.fire(event);
    const known = this.keyMetricMap.get(event.jobId);
    if (known && known.name !== event.name) return;
    this.keyMetricMap.set(event.jobId, { name: event.name, value: event.point.value });
    this.fire({ jobs: [], hosts: false, metrics: [event.jobId], reloaded: false });
  }

  /** Reads the key metric of runs not asked about yet (a view is about to show them). */
  ensureKeyMetrics(ids: readonly number[], read: (id: number) => Promise<MetricSeries[]>): void {
    const missing = ids.filter((id) => !this.metricsAsked.has(id));
    if (!missing.length) return;
    for (const id of missing) this.metricsAsked.add(id);
    void (async () => {
      const updated: number[] = [];
      // A few at a time: a long history must not flood the daemon.
      for (let index = 0; index < missing.length; index += 8) {
        await Promise.all(
          missing.slice(index, index + 8).map(async (id) => {
            try {
              const metric = pickKeyMetric(await read(id));
              if (metric) {
                this.keyMetricMap.set(id, metric);
                updated.push(id);
              }
            } catch {
              // Not there any more, or the daemon went away: asked again after the next reload.
              this.metricsAsked.delete(id);
            }
          }),
        );
      }
      if (updated.length) this.fire({ jobs: [], hosts: false, metrics: updated, reloaded: false });
    })();
  }

  dispose(): void {
    this.changed.dispose();
    this.metricPoints.dispose();
  }

  private fire(change: StoreChange): void {
    if (!this.loading) this.changed.fire(change);
  }
}
