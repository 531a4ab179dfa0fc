import assert from 'node:assert/strict';
import { dueTick as decide, nextTick, type CatchUp } from '../../../runner/src/scheduler/cron-ticks';

/** Local times, as cron reads them. */
/** The daemon has been up since long before unless `upSince` says otherwise. */
const dueTick = (cron: string, lastTick: number, now: number, catchUp: CatchUp, upSince = 0) => decide(cron, { lastTick, now, upSince, catchUp });
const at = (day: number, hour: number, minute = 0, second = 0) => new Date(2026, 0, day, hour, minute, second).getTime();

describe('cron ticks', () => {
  const nightly = '0 2 * * *';

  it('fires nothing before the first tick after the last one', () => {
    assert.equal(dueTick(nightly, at(10, 2), at(10, 3), 'once'), undefined);
    assert.equal(dueTick(nightly, at(10, 2), at(11, 1, 59, 59), 'once'), undefined);
  });

  it('fires a tick that has just come, and never the same tick twice', () => {
    const decision = dueTick(nightly, at(10, 2), at(11, 2, 0, 1), 'none');
    assert.deepEqual(decision, { fire: at(11, 2), missed: 0 });
    assert.equal(dueTick(nightly, at(11, 2), at(11, 2, 0, 5), 'none'), undefined);
    // Exactly at the tick counts.
    assert.deepEqual(dueTick(nightly, at(10, 2), at(11, 2), 'once'), { fire: at(11, 2), missed: 0 });
  });

  it('after downtime: once fires the latest missed tick alone; none skips them all', () => {
    // Down from the 10th until 09:00 on the 13th.
    const now = at(13, 9);
    assert.deepEqual(dueTick(nightly, at(10, 2), now, 'once', now), { fire: at(13, 2), missed: 2 });
    assert.deepEqual(dueTick(nightly, at(10, 2), now, 'none', now), { skip: at(13, 2), missed: 3 });
    // A time after the daemon came up is on time, however late its timer woke (a busy or suspended machine).
    assert.deepEqual(dueTick(nightly, at(12, 2), at(13, 5), 'none', at(13, 1)), { fire: at(13, 2), missed: 0 });
    // Up since just after the tick: it was missed.
    assert.deepEqual(dueTick(nightly, at(12, 2), at(13, 2, 0, 2), 'none', at(13, 2, 0, 1)), { skip: at(13, 2), missed: 1 });
  });

  it('counts seconds when the expression has six fields', () => {
    assert.deepEqual(dueTick('*/2 * * * * *', at(10, 2, 0, 0), at(10, 2, 0, 3), 'once'), { fire: at(10, 2, 0, 2), missed: 0 });
    assert.equal(nextTick('*/2 * * * * *', at(10, 2, 0, 3)), at(10, 2, 0, 4));
    assert.equal(nextTick(nightly, at(10, 2)), at(11, 2));
  });
});
