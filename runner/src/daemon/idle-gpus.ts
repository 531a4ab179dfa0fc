/**
 * Which running runs hold GPUs that do nothing: each host probe reports every GPU's utilization,
 * and a run whose GPUs all stay at ~0% for the configured time is flagged (on its job view), so
 * someone can free them. Derived state, rebuilt from probes after a restart, so never stored.
 */

/** At or below this utilization (percent) a GPU counts as idle: ~0%, allowing for a driver's blips. */
export const IDLE_UTILIZATION_PERCENT = 1;

export class IdleGpuWatch {
  /** When each run's GPUs were first seen idle in the current idle stretch. */
  private readonly idleSince = new Map<number, number>();
  /** The flag each run had when `observe` last answered, so a change over time is news once. */
  private readonly told = new Map<number, number | undefined>();

  constructor(private readonly flagAfterMs: number) {}

  /**
   * Notes what a probe at `probedAt` saw of a run's GPUs (null: the driver does not say). Returns
   * whether the run's flag as of `now` differs from the one the last call found.
   */
  observe(jobId: number, utilization: readonly (number | null | undefined)[], probedAt: number, now: number): boolean {
    const before = this.told.get(jobId);
    const idle = utilization.length > 0 && utilization.every((percent) => typeof percent === 'number' && percent <= IDLE_UTILIZATION_PERCENT);
    if (!idle) this.idleSince.delete(jobId);
    else if (!this.idleSince.has(jobId)) this.idleSince.set(jobId, probedAt);
    const after = this.flaggedSince(jobId, now);
    this.told.set(jobId, after);
    return before !== after;
  }

  /** Since when the run's GPUs have been idle, once that has lasted the configured time. */
  flaggedSince(jobId: number, now: number): number | undefined {
    const since = this.idleSince.get(jobId);
    return since !== undefined && now - since >= this.flagAfterMs ? since : undefined;
  }

  forget(jobId: number): void {
    this.idleSince.delete(jobId);
    this.told.delete(jobId);
  }
}
