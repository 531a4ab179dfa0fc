import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunPlan } from '../../../common/spec';
import { Store } from '../../../runner/src/store/store';

const plan: RunPlan = { key: 'train', job: 'train', params: {}, command: 'true', workdir: '.', env: {}, retries: 0, priority: 0, needs: [], resources: { gpus: { count: 2 } } };

describe('store: who submitted, and recent GPU use for fair share', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-usage-'));
    store = Store.open(join(dir, 'state.db'));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records the submitting user with each job, and reads back GPU use of attempts that ended since a time', () => {
    const add = (user: string, startedAt: number, endedAt: number | null, gpus: number[]) =>
      store.transaction(() => {
        const submission = store.insertSubmission('spec', user, { specText: '', overrides: {}, workdir: '.', env: {} }, startedAt);
        const id = store.insertJob({ submissionId: submission, plan, state: 'running', needs: [] }, startedAt);
        store.insertAttempt({ jobId: id, number: 1, host: 'local', gpus, pid: null, processStart: null, outcome: endedAt === null ? 'running' : 'succeeded', exitCode: null, signal: null, startedAt, endedAt, dir: '.' });
        return id;
      });
    const alice = add('alice', 1_000, 5_000, [0, 1]);
    add('bob', 2_000, 3_000, [2]);
    add('carol', 2_000, 9_000, []);
    add('dave', 2_000, null, [3]);
    assert.equal(store.job(alice)!.user, 'alice');
    assert.deepEqual(store.gpuUsesEndedSince(4_000), [{ user: 'alice', gpus: 2, startedAt: 1_000, endedAt: 5_000 }]);
    assert.deepEqual(store.gpuUsesEndedSince(0).map((use) => use.user).sort(), ['alice', 'bob']);
  });
});
