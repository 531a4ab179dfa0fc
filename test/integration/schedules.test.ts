import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cron } from 'croner';
import type { JobView, ScheduleView } from '../../common/protocol';
import { DaemonHarness, waitFor } from '../support/daemon-harness';

/**
 * Schedules through the real daemon and CLI. Cron expressions with a seconds field keep the
 * waits to seconds; the rule itself is unit-tested with any clock (cron-ticks.test.ts).
 */
describe('schedules', function () {
  this.timeout(60_000);
  let harness: DaemonHarness;
  let workdir: string;

  beforeEach(() => {
    harness = new DaemonHarness();
    workdir = mkdtempSync(join(tmpdir(), 'drover-schedule-work-'));
  });

  afterEach(async () => {
    await harness.dispose();
    rmSync(workdir, { recursive: true, force: true });
  });

  function spec(name: string, schedule: string, extra = ''): string {
    const file = join(workdir, `${name}.drover.yaml`);
    writeFileSync(file, `name: ${name}\nrun: echo tick\nschedule: "${schedule}"\n${extra}`);
    return file;
  }

  async function cli(...args: string[]) {
    const result = await harness.cli(args, workdir);
    assert.equal(result.code, 0, `drover ${args.join(' ')}: ${result.stdout}${result.stderr}`);
    return result.stdout;
  }

  const runs = async (name: string): Promise<JobView[]> => {
    const client = await harness.client();
    try {
      return (await client.request('drover/jobs', {})).filter((job) => job.specName === name);
    } finally {
      client.close();
    }
  };
  const schedules = async (): Promise<ScheduleView[]> => JSON.parse(await cli('schedule', 'list', '--json')) as ScheduleView[];
  const ticksBetween = (cron: string, from: number, to: number) => new Cron(cron, { paused: true }).nextRuns(1000, new Date(from)).filter((at) => at.getTime() <= to).length;

  it('starts a run at each time of the schedule, one per time, until it is removed', async () => {
    const cron = '*/2 * * * * *';
    const added = await cli('schedule', 'add', spec('every2s', cron));
    const addedAt = Date.now();
    assert.match(added, /^scheduled every2s \(\*\/2 \* \* \* \* \*\): next run \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m);
    await waitFor('two scheduled runs to succeed', async () => (await runs('every2s')).filter((job) => job.state === 'succeeded').length >= 2);
    const [listed] = await schedules();
    assert.equal(listed!.name, 'every2s');
    assert.equal(listed!.catchUp, 'once');
    assert.ok(listed!.lastSubmissionId !== undefined && listed!.lastTick! > addedAt - 1000 && listed!.nextTick! > listed!.lastTick!);
    assert.match(await cli('schedule'), /^every2s +\*\/2 \* \* \* \* \* +\d{4}-/m);

    assert.match(await cli('schedule', 'remove', 'every2s'), /removed the schedule every2s/);
    const removedAt = Date.now();
    // Gone: a second remove is a refused request (exit 1), not an unreadable file (3).
    const again = await harness.cli(['schedule', 'remove', 'every2s'], workdir);
    assert.deepEqual([again.code, again.stderr.trim()], [1, "drover schedule: no schedule named 'every2s' (drover schedule list shows them)"]);
    const started = (await runs('every2s')).length;
    // No run per time more than the times that passed.
    assert.ok(started >= 2 && started <= ticksBetween(cron, addedAt - 1000, removedAt), `${started} runs for ${ticksBetween(cron, addedAt - 1000, removedAt)} times`);
    // Its last time (4 s on) has passed with the schedule gone: nothing more started.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    assert.equal((await runs('every2s')).length, started);
    assert.deepEqual(await schedules(), []);
  });

  /** A once-a-minute time a few seconds from now, so the daemon can be down across it. */
  function soonEachMinute(): { cron: string; tick: number } {
    const tick = Math.ceil((Date.now() + 3_000) / 1000) * 1000;
    return { cron: `${new Date(tick).getSeconds()} * * * * *`, tick };
  }

  async function downAcross(tick: number): Promise<void> {
    await cli('daemon', 'stop');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, tick - Date.now() + 1_500)));
    await cli('daemon', 'start');
  }

  it('runs a time missed while the daemon was down once when it is back, and never runs a time twice', async () => {
    const { cron, tick } = soonEachMinute();
    await cli('schedule', 'add', spec('nightly', cron));
    await downAcross(tick);
    const [run] = await waitFor('the missed time to start a run', async () => {
      const found = await runs('nightly');
      return found.length ? found : undefined;
    });
    assert.equal((await schedules())[0]!.lastTick, tick);
    assert.equal((await schedules())[0]!.lastSubmissionId, run!.submissionId);
    // Another restart before the next time: that time was recorded with its run, so nothing new.
    await cli('daemon', 'stop');
    await cli('daemon', 'start');
    await cli('schedule');
    assert.equal((await runs('nightly')).length, 1);
  });

  it('skips missed times with catch_up: none', async () => {
    const { cron, tick } = soonEachMinute();
    await cli('schedule', 'add', spec('skipper', cron, 'catch_up: none\n'));
    await downAcross(tick);
    const [listed] = await waitFor('the missed time to be noted', async () => {
      const found = await schedules();
      return found[0]?.lastTick === tick ? found : undefined;
    });
    assert.equal(listed!.lastSubmissionId, undefined);
    assert.deepEqual(await runs('skipper'), []);
  });

  it('refuses a spec without a schedule, and a bad catch_up, saying what to do', async () => {
    const file = join(workdir, 'plain.drover.yaml');
    writeFileSync(file, 'name: plain\nrun: echo hi\n');
    const plain = await harness.cli(['schedule', 'add', file], workdir);
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /has no `schedule:`: add one \(e\.g\. schedule: "0 2 \* \* \*"\), or submit it to run it once now/);
    const bad = await harness.cli(['schedule', 'add', spec('bad', '0 2 * * *', 'catch_up: sometimes\n')], workdir);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /bad\.drover\.yaml:4:\d+: .*catch_up|bad\.drover\.yaml:4:\d+: .*(once|none)/);
    assert.deepEqual(await schedules(), []);
    // Submitting a scheduled spec runs it once now, and says how to schedule it.
    const submitted = await harness.cli(['submit', spec('once', '0 2 * * *')], workdir);
    assert.equal(submitted.code, 0, submitted.stderr);
    assert.match(submitted.stderr, /note: this runs it once now; `drover schedule add .*once\.drover\.yaml` runs it on its schedule/);
  });
});
