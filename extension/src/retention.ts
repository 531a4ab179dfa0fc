import { FINAL_STATES } from '../../common/protocol';
import { config } from './config';
import type { DroverContext } from './context';
import { expiredRuns } from './model/retention';

/**
 * `drover.logs.retentionDays`: once per window, after the first connection, forgets finished
 * runs (records, logs, metrics) that ended more than that many days ago. 0 keeps everything.
 */
export function registerRetention(ctx: DroverContext): void {
  let done = false;
  ctx.onConnected(async (client) => {
    const days = config.retentionDays();
    if (done || days === 0) return;
    done = true;
    const expired = expiredRuns(await client.request('drover/jobs', { states: [...FINAL_STATES] }), days, Date.now());
    if (!expired.length) return;
    const { deleted } = await client.request('drover/delete', { ids: expired });
    ctx.store.removeJobs(deleted);
    ctx.output.info(`deleted ${deleted.length} runs that ended more than ${days} days ago (drover.logs.retentionDays)`);
  });
}
