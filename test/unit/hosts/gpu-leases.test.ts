import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  describeLeaseHolders, leasedByOthers, listLeasesScript, parseLeaseLines, releaseLeasesScript, runLeaseScript, setLeasesScript, takeLeasesScript, takeLocalLeases,
  type LeaseOwner,
} from '../../../runner/src/hosts/gpu-leases';

/** The lease scripts run by a real `sh` against a lease folder of the test's own. */
describe('GPU leases', function () {
  if (process.platform === 'win32') return;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const alice: LeaseOwner = { daemonId: 'aaaa', user: 'alice', machine: 'laptop', jobId: 7, attempt: 1 };
  const bob: LeaseOwner = { daemonId: 'bbbb', user: 'bob', machine: 'desk top', jobId: 3, attempt: 2 };
  const GPU0 = 'GPU-5ef121db-e36a-f898-0288-aa75be0e76a5';
  const GPU1 = 'GPU-2a99bd02-c605-2648-e2b3-aaade22e68fd';

  beforeEach(() => {
    dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'drover-leases-')), 'leases');
    env = { ...process.env, DROVER_GPU_LEASE_DIR: dir };
  });
  afterEach(() => rmSync(path.dirname(dir), { recursive: true, force: true }));

  const list = async () => parseLeaseLines((await runLeaseScript(listLeasesScript(), env)).stdout);
  /** A process that lives until killed, to hold leases with. */
  function holder(): { pid: number; end: () => void } {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    return { pid: child.pid!, end: () => child.kill('SIGKILL') };
  }

  it('takes every GPU or none, names the holder of a held one, and creates a folder every user can write', async () => {
    const first = holder();
    try {
      assert.equal(await takeLocalLeases(alice, [GPU0], env), undefined);
      assert.equal(statSync(dir).mode & 0o777, 0o777);
      // The daemon's pid holds it until the run's process does.
      assert.equal((await runLeaseScript(setLeasesScript(alice, [GPU0], first.pid), env)).code, 0);
      const refused = await takeLocalLeases(bob, [GPU1, GPU0], env);
      assert.deepEqual(refused?.held.map((lease) => [lease.gpu, lease.user, lease.machine, lease.jobId, lease.pid]), [[GPU0, 'alice', 'laptop', 7, first.pid]]);
      // Nothing of bob's was taken: GPU 1 is still free.
      assert.deepEqual((await list()).map((lease) => [lease.gpu, lease.daemonId]), [[GPU0, 'aaaa']]);
      const holders = describeLeaseHolders([{ name: 'h1', gpus: [{ index: 0, uuid: GPU0 }, { index: 1, uuid: GPU1 }], leases: leasedByOthers(await list(), 'bbbb') }]);
      assert.match(holders, /^GPU 0 on h1 is leased by alice's Drover on laptop \(run 7\) since \d\d:\d\d:\d\d UTC$/);
      assert.equal(leasedByOthers(await list(), 'aaaa').size, 0, "a daemon's own leases are not in its way");
      // Taking its own lease again (the same attempt) is no conflict.
      assert.equal(await takeLocalLeases(alice, [GPU0], env), undefined);
    } finally {
      first.end();
    }
  });

  it('takes over a lease whose process is gone, or that was taken before the last boot', async () => {
    const gone = spawnSync('true').pid!;
    assert.equal(await takeLocalLeases(alice, [GPU0], env), undefined);
    assert.equal((await runLeaseScript(setLeasesScript(alice, [GPU0], gone), env)).code, 0);
    assert.deepEqual(await list(), [], 'a lease of a process that ended is not listed');
    assert.equal(await takeLocalLeases(bob, [GPU0], env), undefined, 'bob takes the stale lease over');
    assert.match(readFileSync(path.join(dir, GPU0), 'utf8'), /^v=1 daemon=bbbb user=bob machine=desk_top job=3 attempt=2 pid=\d+ /);

    const alive = holder();
    try {
      // Alive, but its record is from another boot: the pid is someone else's now.
      writeFileSync(path.join(dir, GPU1), `v=1 daemon=cccc user=carol machine=m job=1 attempt=1 pid=${alive.pid} pstart= boot=not-this-boot since=1\n`);
      assert.deepEqual((await list()).map((lease) => lease.user), ['bob'], "only bob's lease (held by this process) is live");
      assert.equal(await takeLocalLeases(alice, [GPU1], env), undefined);
    } finally {
      alive.end();
    }
  });

  it("releases only the owner's own leases", async () => {
    const run = holder();
    try {
      assert.equal(await takeLocalLeases(alice, [GPU0], env), undefined);
      await runLeaseScript(setLeasesScript(alice, [GPU0], run.pid), env);
      await runLeaseScript(releaseLeasesScript(bob, [GPU0]), env);
      assert.equal((await list()).length, 1, "bob cannot release alice's lease");
      await runLeaseScript(releaseLeasesScript({ ...alice, attempt: 2 }, [GPU0]), env);
      assert.equal((await list()).length, 1, 'another attempt of the same run does not release it');
      await runLeaseScript(releaseLeasesScript(alice, [GPU0]), env);
      assert.deepEqual(readdirSync(dir).filter((name) => !name.startsWith('.')), []);
    } finally {
      run.end();
    }
  });

  it('lets exactly one of many simultaneous takers have a GPU', async () => {
    const run = holder();
    try {
      // Each taker's lease lasts as long as `run`, so a later taker cannot see the first as stale.
      const owners = Array.from({ length: 8 }, (_, index): LeaseOwner => ({ daemonId: `d${index}`, user: `u${index}`, machine: 'm', jobId: index, attempt: 1 }));
      const results = await Promise.all(owners.map((owner) => runLeaseScript(takeLeasesScript(owner, [GPU0, GPU1], String(run.pid)), env)));
      assert.equal(results.filter((result) => result.code === 0).length, 1, results.map((result) => result.stdout).join('\n'));
      assert.ok(results.filter((result) => result.code === 3).every((result) => parseLeaseLines(result.stdout).length === 2));
    } finally {
      run.end();
    }
  });

  it('reads a lease again when the record it read names a process already gone (a launch handing its lease to its run)', async () => {
    const run = holder();
    try {
      assert.equal(await takeLocalLeases(alice, [GPU0], env), undefined);
      await runLeaseScript(setLeasesScript(alice, [GPU0], run.pid), env);
      const file = path.join(dir, GPU0);
      const launcher = spawnSync('true').pid!;
      const beforeHandover = readFileSync(file, 'utf8').replace(/ pid=\d+ pstart=\d*/, ` pid=${launcher} pstart=`);
      assert.notEqual(beforeHandover, readFileSync(file, 'utf8'));
      // A `cat` that answers the first read of the lease with the record from before the handover.
      const shims = mkdtempSync(path.join(os.tmpdir(), 'drover-lease-shims-'));
      try {
        writeFileSync(path.join(shims, 'cat'), '#!/bin/sh\nif [ "$1" = "$LEASE_FILE" ] && mkdir "$FIRST_READ" 2>/dev/null; then printf "%s" "$BEFORE_HANDOVER"; exit 0; fi\nexec /bin/cat "$@"\n', { mode: 0o755 });
        const racing = (look: string) => ({ ...env, PATH: `${shims}:${env['PATH']}`, LEASE_FILE: file, BEFORE_HANDOVER: beforeHandover, FIRST_READ: path.join(shims, look) });
        const listed = parseLeaseLines((await runLeaseScript(listLeasesScript(), racing('list'))).stdout);
        assert.deepEqual(listed.map((lease) => [lease.gpu, lease.pid]), [[GPU0, run.pid]]);
        const taking = await runLeaseScript(takeLeasesScript(bob, [GPU0], String(run.pid)), racing('take'));
        assert.equal(taking.code, 3, 'bob does not take it over');
        assert.deepEqual(parseLeaseLines(taking.stdout).map((lease) => [lease.user, lease.pid]), [['alice', run.pid]]);
        assert.ok(['list', 'take'].every((look) => readdirSync(shims).includes(look)), 'each look met the record from before the handover first');
      } finally {
        rmSync(shims, { recursive: true, force: true });
      }
    } finally {
      run.end();
    }
  });

  it('keeps every value a single word of the record', () => {
    assert.throws(() => takeLeasesScript(alice, ['GPU-1; rm -rf /'], '$$'), /not a GPU UUID/);
  });
});
