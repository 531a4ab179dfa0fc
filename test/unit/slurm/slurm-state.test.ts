import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expandTaskString, parseNodes, parsePartitions, parseSacct, parseSqueueJson, standingOf, type RunStanding, type SlurmJob } from '../../../runner/src/hosts/slurm/slurm-state';
import { ROOT } from '../../support/daemon-harness';

const fixture = (name: string) => readFileSync(join(ROOT, 'test/fixtures/slurm', name), 'utf8');

function byId(jobs: SlurmJob[]): Map<string, SlurmJob> {
  return new Map(jobs.map((job) => [job.id, job]));
}

function outcomeOf(standing: RunStanding): string {
  return standing.kind === 'ended' ? standing.outcome : standing.kind;
}

describe('reading SLURM state', () => {
  it('reads squeue --json of SLURM 22.05 (recorded): every state, exit code and array task', () => {
    const jobs = byId(parseSqueueJson(fixture('squeue-22.05.json')));
    const standing = (id: string) => standingOf(jobs.get(id)!);
    assert.deepEqual(standing('1'), { kind: 'ended', outcome: 'succeeded', exitCode: 0, signal: null, description: 'succeeded' });
    assert.deepEqual(standing('3'), { kind: 'ended', outcome: 'failed', exitCode: 3, signal: null, description: 'exited with code 3 (SLURM FAILED)' });
    assert.equal((standing('4') as { description: string }).description, 'SLURM could not run it (BadConstraints)');
    assert.equal(outcomeOf(standing('8')), 'timed-out');
    assert.equal(outcomeOf(standing('9')), 'cancelled');
    const skipped = standing('13');
    assert.ok(skipped.kind === 'ended' && skipped.skipped === true && skipped.outcome === 'cancelled');
    for (const task of [0, 1, 2, 3]) assert.equal(jobs.get(`2_${task}`)?.state, 'COMPLETED', `array task 2_${task}`);
    assert.deepEqual(standing('16_0'), { kind: 'running', nodes: 'vm' });
    for (const task of ['16_1', '16_2']) {
      assert.equal(jobs.get(task)?.arrayJobId, '16');
      assert.deepEqual(standing(task), { kind: 'queued', reason: "SLURM: the sweep's max_parallel runs are already running (JobArrayTaskLimit)" });
    }
    assert.ok(jobs.get('16_0')!.startTime! > 1_700_000_000);
  });

  it('reads squeue --json of SLURM 23.11 (from its documented format): flag lists, {set, number} fields, exit objects', () => {
    const jobs = byId(parseSqueueJson(fixture('squeue-23.11.json')));
    assert.deepEqual(standingOf(jobs.get('201')!), { kind: 'running', nodes: 'gpu-node-01' });
    assert.deepEqual(standingOf(jobs.get('202')!), { kind: 'queued', reason: 'SLURM: waiting for the runs it needs (Dependency)' });
    assert.deepEqual([...jobs.keys()].filter((id) => id.startsWith('210_')).sort(), ['210_0', '210_1', '210_2', '210_3', '210_4', '210_5']);
    assert.equal(jobs.get('210_1')!.state, 'COMPLETED', 'the first flag is the state');
    assert.deepEqual(standingOf(jobs.get('220')!), { kind: 'ended', outcome: 'failed', exitCode: 3, signal: null, description: 'exited with code 3 (SLURM FAILED)' });
    const outcome = (id: string) => {
      const standing = standingOf(jobs.get(id)!);
      return standing.kind === 'ended' ? [standing.outcome, standing.signal] : [standing.kind];
    };
    assert.deepEqual(outcome('221'), ['timed-out', null]);
    assert.deepEqual(outcome('222'), ['failed', 'SIGKILL']);
    assert.deepEqual(outcome('223'), ['lost', null]);
    assert.deepEqual(outcome('224'), ['lost', 'SIGTERM']);
    assert.deepEqual(outcome('225'), ['cancelled', 'SIGTERM']);
    assert.match((standingOf(jobs.get('222')!) as { description: string }).description, /OUT_OF_MEMORY/);
    assert.equal(jobs.get('201')!.startTime, 1_700_000_000);
    assert.equal(jobs.get('202')!.startTime, undefined);
  });

  it('reads sacct -P (23.11, documented), and says nothing for 22.05 without slurmdbd', () => {
    const jobs = byId(parseSacct(fixture('sacct-23.11.txt')));
    assert.equal(jobs.get('103')!.state, 'CANCELLED');
    assert.deepEqual([jobs.get('102')!.exitCode, jobs.get('103')!.signal], [3, 15]);
    assert.deepEqual([jobs.get('104_1')!.arrayJobId, jobs.get('104_1')!.arrayTaskId], ['104', 1]);
    assert.equal(outcomeOf(standingOf(jobs.get('104_0')!)), 'timed-out');
    assert.equal(standingOf(jobs.get('107')!).kind, 'queued');
    assert.match(fixture('sacct-22.05-no-slurmdbd.txt'), /accounting storage is disabled/);
  });

  it('reads partitions and nodes with their GRES and use from sinfo (22.05, recorded)', () => {
    assert.deepEqual(parsePartitions(fixture('sinfo-partitions-22.05.txt')), [
      { name: 'debug', default: true, state: 'up', nodes: 'vm', timeLimit: 'infinite' },
      { name: 'long', default: false, state: 'up', nodes: 'vm', timeLimit: '2-00:00:00' },
    ]);
    assert.deepEqual(parseNodes(fixture('sinfo-nodes-22.05.txt')), [
      { name: 'vm', state: 'mixed', partitions: ['debug', 'long'], cpus: 8, cpusAllocated: 1, memoryMiB: 8000, memoryAllocatedMiB: 100, gres: 'gpu:a100:2', gresUsed: 'gpu:a100:1(IDX:0)' },
    ]);
  });

  it('expands array task strings', () => {
    assert.deepEqual(expandTaskString('2-5%2'), [2, 3, 4, 5]);
    assert.deepEqual(expandTaskString('1,3,7-8'), [1, 3, 7, 8]);
    assert.deepEqual(expandTaskString('0-6:3'), [0, 3, 6]);
  });

  it('refuses output that is not squeue JSON, saying so', () => {
    assert.throws(() => parseSqueueJson('squeue: error: Invalid user'), /squeue --json gave no JSON/);
    assert.throws(() => parseSqueueJson('{}'), /no "jobs" list/);
  });
});
