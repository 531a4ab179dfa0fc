import type { ScheduleView } from '../../../common/protocol';
import { dueTick, nextTick } from '../scheduler/cron-ticks';
import type { ScheduleRow, Store } from '../store/store';

/** Longest sleep between checks, so a clock that jumps (a suspended laptop) is noticed soon. */
const MAX_SLEEP_MS = 60_000;

export interface ScheduleActions {
  /**
   * Starts the runs of one scheduled time. It must record the time (`setScheduleTick`) in the
   * transaction that writes the runs, and do nothing if the store already has it.
   */
  fire(schedule: ScheduleRow, tick: number, missed: number): void;
  /** Notes missed times that are not run (`catch_up: none`). */
  skip(schedule: ScheduleRow, tick: number, missed: number): void;
}

/**
 * The daemon's alarm clock for registered schedules: it reads them from the store, asks the pure
 * rule (cron-ticks.ts) what is due, and sleeps until the next time any of them fires.
 */
export class ScheduleTimer {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Times before this passed while no daemon was up to run them. */
  private readonly upSince: number;

  constructor(
    private readonly store: Store,
    private readonly actions: ScheduleActions,
    private readonly clock: () => number = Date.now,
  ) {
    this.upSince = clock();
  }

  /** Fires what is due now and sleeps until the next time. Call it again whenever schedules change. */
  check(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const now = this.clock();
    let next = Infinity;
    for (const schedule of this.store.schedules()) {
      const decision = dueTick(schedule.cron, { lastTick: schedule.lastTick, now, upSince: this.upSince, catchUp: schedule.catchUp });
      if (decision && 'fire' in decision) this.actions.fire(schedule, decision.fire, decision.missed);
      else if (decision) this.actions.skip(schedule, decision.skip, decision.missed);
      next = Math.min(next, nextTick(schedule.cron, now) ?? Infinity);
    }
    if (Number.isFinite(next)) this.timer = setTimeout(() => this.check(), Math.min(MAX_SLEEP_MS, Math.max(0, next - this.clock())));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  view(schedule: ScheduleRow): ScheduleView {
    const { params } = schedule;
    const upcoming = nextTick(schedule.cron, this.clock());
    return {
      name: schedule.name,
      cron: schedule.cron,
      catchUp: schedule.catchUp,
      ...(params.specPath !== undefined && { specPath: params.specPath }),
      cwd: params.cwd,
      ...(params.host !== undefined && { host: params.host }),
      overrides: params.overrides ?? {},
      createdAt: schedule.createdAt,
      ...(schedule.lastTick > schedule.createdAt && { lastTick: schedule.lastTick }),
      ...(schedule.lastSubmissionId !== null && { lastSubmissionId: schedule.lastSubmissionId }),
      ...(upcoming !== undefined && { nextTick: upcoming }),
    };
  }
}
