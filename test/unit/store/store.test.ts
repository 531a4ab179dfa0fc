import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunPlan } from '../../../common/spec';
import { Store } from '../../../runner/src/store/store';

const RECORD = { specText: 'name: t\nrun: "true"\n', overrides: {}, workdir: '/tmp', env: {} };

describe('store: commits and syncs', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-store-'));
    file = join(dir, 'drover.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps what deferred transactions wrote once durable() resolves, across a reopen', async () => {
    const store = Store.open(file);
    const ids: number[] = [];
    for (let i = 0; i < 50; i++) ids.push(store.transaction(() => store.insertSubmission(`s${i}`, 'ada', RECORD, i), { deferred: true }));
    // Everyone who committed while a sync ran shares the next one.
    await Promise.all(ids.map(() => store.durable()));
    store.close();
    const again = Store.open(file);
    assert.deepEqual(ids.map((id) => again.submissionRecord(id)?.specText), ids.map(() => RECORD.specText));
    again.close();
  });

  it('checkpoints the log into the database file once it grows large, and empties it', () => {
    const store = Store.open(file);
    const big = { ...RECORD, specText: 'x'.repeat(256 * 1024) };
    let largest = 0;
    for (let i = 0; i < 40; i++) {
      store.transaction(() => store.insertSubmission(`big${i}`, 'ada', big, i));
      largest = Math.max(largest, statSync(`${file}-wal`).size);
    }
    // 40 × 256 KiB went through a log that never held more than its limit and one commit.
    assert.ok(largest < 6 * 1024 * 1024, `the log grew to ${largest} bytes`);
    // All but what came after the last checkpoint (under a log's limit, 4 MiB, and one commit), wherever that fell.
    assert.ok(statSync(file).size > 40 * 256 * 1024 - 4 * 1024 * 1024 - 512 * 1024, 'the records are in the database file');
    store.close();
    assert.equal(existsSync(`${file}-wal`), false, 'closing folds the log in and removes it');
    const again = Store.open(file);
    assert.equal(again.submissionRecord(40)?.specText.length, big.specText.length);
    again.close();
  });

  it('resolves durable() at once when nothing was written', async () => {
    const store = Store.open(file);
    await store.durable();
    store.close();
  });
});

describe('store: job plans', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-plans-'));
    store = Store.open(join(dir, 'drover.db'));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const planNamed = (command: string): RunPlan => ({ key: command, job: command, params: {}, command, workdir: '.', env: {}, retries: 0, priority: 0, needs: [], resources: { gpus: { count: 0 } } });
  const insert = (plan: RunPlan) => {
    const submission = store.insertSubmission('spec', 'ada', RECORD, 0);
    return store.insertJob({ submissionId: submission, plan, state: 'queued', needs: [] }, 0);
  };

  it('reads each plan as stored: from its insert, through its end, and after a rollback gave its id to another job', () => {
    const plan = planNamed('first');
    const first = store.transaction(() => insert(plan));
    // What was stored, not the caller's object: changing that object later changes nothing.
    plan.command = 'changed by the caller';
    assert.equal(store.job(first)!.plan.command, 'first');
    store.transaction(() => store.updateJob(first, { state: 'succeeded' }));
    assert.equal(store.job(first)!.plan.command, 'first');

    // A rolled-back job's id is given out again: the next job there reads its own plan.
    assert.throws(() => store.transaction(() => {
      insert(planNamed('rolled back'));
      throw new Error('undone');
    }), /undone/);
    const next = store.transaction(() => insert(planNamed('next')));
    assert.equal(next, first + 1, 'the rolled-back id is used again');
    assert.equal(store.job(next)!.plan.command, 'next');

    // Ended long ago (many others ended since), and read from the file again.
    for (let i = 0; i < 300; i++) {
      const id = store.transaction(() => insert(planNamed(`job ${i}`)));
      store.transaction(() => store.updateJob(id, { state: 'failed' }));
    }
    assert.equal(store.job(first)!.plan.command, 'first');
    assert.equal(store.job(next)!.plan.command, 'next');
  });
});
