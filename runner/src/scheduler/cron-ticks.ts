import { Cron } from 'croner';

/**
 * When a schedule fires, as a pure function of its cron expression, the last tick it fired (or
 * took account of) and the time now: no timers and no clock of its own, so the daemon and tests
 * drive it with any time they like.
 */

export type CatchUp = 'once' | 'none';

export type TickDecision =
  /** Start a run for this tick. */
  | { fire: number; missed: number }
  /** Missed ticks up to this one are skipped (`catch_up: none`): note it as done, start nothing. */
  | { skip: number; missed: number }
  | undefined;

/**
 * What to do at `now`: nothing, when no tick passed since `lastTick`; else fire the latest tick
 * (once, however many passed), unless it passed before `upSince` (the daemon was down then: it
 * was missed) and `catchUp` is 'none', which skips it. A tick after `upSince` is on time however
 * late the timer woke. `missed` counts the ticks passed since `lastTick` that start no run of
 * their own (up to a bound).
 */
export function dueTick(cron: string, options: { lastTick: number; now: number; upSince: number; catchUp: CatchUp }): TickDecision {
  const { lastTick, now, upSince, catchUp } = options;
  const pattern = new Cron(cron, { paused: true });
  const latest = pattern.previousRuns(1, new Date(now + 1))[0]?.getTime();
  if (latest === undefined || latest <= lastTick) return undefined;
  const passed = pattern.nextRuns(MISSED_COUNT_LIMIT, new Date(lastTick)).filter((at) => at.getTime() <= latest).length;
  if (latest < upSince && catchUp === 'none') return { skip: latest, missed: passed };
  return { fire: latest, missed: Math.max(0, passed - 1) };
}

const MISSED_COUNT_LIMIT = 1000;

/** The next tick after `now`, or undefined if the expression never fires again. */
export function nextTick(cron: string, now: number): number | undefined {
  return new Cron(cron, { paused: true }).nextRun(new Date(now))?.getTime();
}
