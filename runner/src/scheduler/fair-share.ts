/**
 * Recent GPU use per user, for fair share: GPU-time that decays by half every `halfLifeMs`, so
 * what someone ran last week weighs less than what they ran this morning (SLURM's
 * PriorityDecayHalfLife does the same).
 */

/** GPUs held by a user from `startedAt` until `endedAt` (still held when null). */
export interface GpuUse {
  user: string;
  gpus: number;
  startedAt: number;
  endedAt: number | null;
}

/** A week, as SLURM's default decay half-life. */
export const DEFAULT_USAGE_HALF_LIFE_MS = 7 * 24 * 3_600_000;

/**
 * Each user's decayed GPU-hours at `now`: ∫ gpus · 2^(−(now − t)/halfLife) dt over the use,
 * in hours. Use before `now − 8 half-lives` adds under 0.4 % and can be left out by the caller.
 */
export function recentGpuHours(uses: Iterable<GpuUse>, now: number, halfLifeMs = DEFAULT_USAGE_HALF_LIFE_MS): Map<string, number> {
  const rate = Math.LN2 / halfLifeMs;
  const hours = new Map<string, number>();
  for (const use of uses) {
    if (use.gpus === 0) continue;
    const end = Math.min(now, use.endedAt ?? now);
    const start = Math.min(use.startedAt, end);
    // ∫_start^end e^(−rate (now − t)) dt = (e^(−rate (now − end)) − e^(−rate (now − start))) / rate
    const weighted = (Math.exp(-rate * (now - end)) - Math.exp(-rate * (now - start))) / rate;
    hours.set(use.user, (hours.get(use.user) ?? 0) + (use.gpus * weighted) / 3_600_000);
  }
  return hours;
}

/** Each user's part (0–1) of all recent GPU use; nobody has a part when nobody used any. */
export function usageShares(recent: ReadonlyMap<string, number>): Map<string, number> {
  let total = 0;
  for (const hours of recent.values()) total += hours;
  const shares = new Map<string, number>();
  if (total <= 0) return shares;
  for (const [user, hours] of recent) shares.set(user, hours / total);
  return shares;
}
