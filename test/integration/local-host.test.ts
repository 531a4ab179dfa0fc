// Probes GPUs through the fake nvidia-smi in test/fixtures/bin, found on PATH the way the real
// tool is, so the whole path (lookup, process, exit codes, timeouts, parsing) is exercised.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { probeLocalHost } from '../../runner/src/hosts/local-host';
import { GPU_QUERY_ARGS, parseGpuQuery, probeNvidiaSmi } from '../../runner/src/hosts/nvidia-smi';

const ROOT = path.resolve(__dirname, '../../..');
const FIXTURE_BIN = path.join(ROOT, 'test/fixtures/bin');
const FAKE_NVIDIA_SMI = path.join(FIXTURE_BIN, 'nvidia-smi');
const STATES = path.join(ROOT, 'test/fixtures/gpus');
const MIB = 1024 * 1024;
const DRIVER_FAILURE =
  "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.";

/** PATH with the fixture first; node's own directory after it, for the fixture's `#!/usr/bin/env node`. */
function fakeEnv(stateFile: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: [FIXTURE_BIN, path.dirname(process.execPath), process.env.PATH].join(path.delimiter) };
  if (stateFile === undefined) delete env.DROVER_FAKE_GPUS;
  else env.DROVER_FAKE_GPUS = stateFile;
  return env;
}

const state = (name: string) => fakeEnv(path.join(STATES, name));

describe('local host probe (fake nvidia-smi)', () => {
  let dir: string;

  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'drover-gpus-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function writeState(content: object): string {
    const file = path.join(dir, 'state.json');
    writeFileSync(file, JSON.stringify(content));
    return file;
  }

  it('finds two A100s, one of them held by a foreign process', async () => {
    const probe = await probeNvidiaSmi({ env: state('two-a100.json') });
    assert.equal(probe.status, 'ok');
    if (probe.status !== 'ok') return;
    assert.equal(probe.driverVersion, '550.54.15');
    assert.deepEqual(probe.gpus.map((g) => [g.index, g.name, g.memoryTotalBytes, g.memoryUsedBytes, g.utilizationPercent]), [
      [0, 'NVIDIA A100-SXM4-40GB', 40960 * MIB, 17412 * MIB, 37],
      [1, 'NVIDIA A100-SXM4-40GB', 40960 * MIB, 0, 0],
    ]);
    for (const gpu of probe.gpus) assert.match(gpu.uuid, /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.notEqual(probe.gpus[0]!.uuid, probe.gpus[1]!.uuid);
    assert.deepEqual(probe.processes, [{ pid: 4242, gpuUuid: probe.gpus[0]!.uuid, usedMemoryBytes: 17408 * MIB }]);
  });

  it('gives the same GPUs the same uuids on every run', async () => {
    const [a, b] = await Promise.all([probeNvidiaSmi({ env: state('two-a100.json') }), probeNvidiaSmi({ env: state('four-mixed.json') })]);
    assert.ok(a.status === 'ok' && b.status === 'ok');
    assert.deepEqual(a.gpus.map((g) => g.uuid), b.gpus.slice(0, 2).map((g) => g.uuid));
  });

  it('inventories the host: CPUs, memory, GPUs and every GPU process as foreign', async () => {
    const host = await probeLocalHost({ env: state('two-a100.json') });
    assert.equal(host.name, 'local');
    assert.equal(host.os, `${os.type()} ${os.release()}`);
    assert.equal(host.cpus, os.availableParallelism());
    assert.equal(host.memoryBytes, os.totalmem());
    assert.equal(host.state, 'up');
    assert.equal(host.message, undefined);
    assert.equal(host.driverVersion, '550.54.15');
    assert.equal(host.gpus.length, 2);
    assert.deepEqual(host.foreignProcesses.map((p) => [p.pid, p.gpuUuid]), [[4242, host.gpus[0]!.uuid]]);
    assert.ok(Math.abs(host.probedAt - Date.now()) < 60_000);
  });

  it('reads a mixed box with nothing running, under a given name', async () => {
    const host = await probeLocalHost({ name: 'gpu-box', env: state('four-mixed.json') });
    assert.equal(host.name, 'gpu-box');
    assert.equal(host.state, 'up');
    assert.deepEqual(host.gpus.map((g) => [g.name, g.memoryTotalBytes / MIB]), [
      ['NVIDIA A100-SXM4-40GB', 40960],
      ['NVIDIA A100-SXM4-40GB', 40960],
      ['NVIDIA GeForce RTX 4090', 24564],
      ['NVIDIA GeForce RTX 4090', 24564],
    ]);
    assert.deepEqual(host.foreignProcesses, []);
  });

  it('reports [N/A] utilization as null', async () => {
    const file = writeState({ gpus: [{ name: 'NVIDIA A100-SXM4-40GB', memoryTotalMiB: 40960, memoryUsedMiB: 0, utilization: null }], processes: [{ pid: 7, gpu: 0, usedMiB: null }] });
    const probe = await probeNvidiaSmi({ env: fakeEnv(file) });
    assert.ok(probe.status === 'ok');
    assert.equal(probe.gpus[0]!.utilizationPercent, null);
    assert.deepEqual(probe.processes.map((p) => [p.pid, p.usedMemoryBytes]), [[7, 0]]);
  });

  it('calls a host without nvidia-smi CPU-only, not broken', async () => {
    // A PATH holding only an empty directory: neither the fixture nor a real nvidia-smi.
    const env = { ...process.env, PATH: dir };
    assert.deepEqual(await probeNvidiaSmi({ env }), { status: 'absent' });
    const host = await probeLocalHost({ env });
    assert.equal(host.state, 'up');
    assert.deepEqual([host.gpus, host.foreignProcesses, host.message, host.driverVersion], [[], [], undefined, undefined]);
  });

  it('calls an explicit nvidia-smi path that does not exist degraded, not CPU-only', async () => {
    const missing = path.join(dir, 'nvidia-smi');
    assert.deepEqual(await probeNvidiaSmi({ command: missing }), { status: 'degraded', message: `${missing} not found` });
  });

  it('reports a broken driver as degraded, in nvidia-smi\'s own words', async () => {
    assert.deepEqual(await probeNvidiaSmi({ env: state('broken-driver.json') }), { status: 'degraded', message: DRIVER_FAILURE });
    const host = await probeLocalHost({ env: state('broken-driver.json') });
    assert.equal(host.state, 'degraded');
    assert.equal(host.message, DRIVER_FAILURE);
    assert.deepEqual(host.gpus, []);
  });

  it('reports "No devices were found" as degraded', async () => {
    assert.deepEqual(await probeNvidiaSmi({ env: fakeEnv(undefined) }), { status: 'degraded', message: 'No devices were found' });
  });

  it('gives up on a hung nvidia-smi after the timeout', async () => {
    const file = writeState({ hang: true, gpus: [{ name: 'NVIDIA A100-SXM4-40GB', memoryTotalMiB: 40960, memoryUsedMiB: 0, utilization: 0 }] });
    const started = Date.now();
    const probe = await probeNvidiaSmi({ env: fakeEnv(file), timeoutMs: 300 });
    const elapsed = Date.now() - started;
    assert.deepEqual(probe, { status: 'degraded', message: 'nvidia-smi did not answer within 300 ms' });
    assert.ok(elapsed >= 290 && elapsed < 5_000, `took ${elapsed} ms`);
  });

  it('reports output it cannot parse as degraded', async () => {
    const script = path.join(dir, 'nvidia-smi');
    writeFileSync(script, '#!/bin/sh\necho "Segmentation fault in libnvidia-ml"\n');
    chmodSync(script, 0o755);
    const probe = await probeNvidiaSmi({ command: script });
    assert.equal(probe.status, 'degraded');
    assert.match(probe.status === 'degraded' ? probe.message : '', /cannot parse nvidia-smi's GPU list: "Segmentation fault/);
  });

  describe('the fixture itself', () => {
    function fake(args: string[], stateName = 'two-a100.json') {
      const result = spawnSync(process.execPath, [FAKE_NVIDIA_SMI, ...args], { env: state(stateName), encoding: 'utf8' });
      return { code: result.status, stdout: result.stdout };
    }

    it('rejects an unknown field with exit 2, as the real tool does', () => {
      const { code, stdout } = fake(['--query-gpu=index,bogus', '--format=csv,noheader,nounits']);
      assert.equal(code, 2);
      assert.equal(stdout.split('\n')[0], 'Field "bogus" is not a valid field to query.');
    });

    it('prints headers and units unless asked not to', () => {
      assert.equal(fake(['--query-gpu=index,memory.used,utilization.gpu', '--format=csv']).stdout, 'index, memory.used [MiB], utilization.gpu [%]\n0, 17412 MiB, 37 %\n1, 0 MiB, 0 %\n');
      assert.match(fake(['--query-compute-apps=pid,gpu_uuid,used_memory', '--format=csv']).stdout, /^pid, gpu_uuid, used_gpu_memory \[MiB\]\n4242, GPU-[0-9a-f-]+, 17408 MiB\n$/);
      assert.equal(fake(['--query-compute-apps=pid,gpu_uuid,used_memory', '--format=csv,noheader,nounits'], 'four-mixed.json').stdout, '');
    });

    it('answers the probe\'s query with units the same as without', () => {
      const withUnits = fake([GPU_QUERY_ARGS[0]!, '--format=csv,noheader']);
      const without = fake([...GPU_QUERY_ARGS]);
      assert.match(withUnits.stdout, /, 40960 MiB, 17412 MiB, 37 %, 550\.54\.15\n/);
      assert.equal(parseGpuQuery(withUnits.stdout).length, 2);
      assert.deepEqual(parseGpuQuery(withUnits.stdout), parseGpuQuery(without.stdout));
    });

    it('lists GPUs with -L', () => {
      const { code, stdout } = fake(['-L'], 'four-mixed.json');
      assert.equal(code, 0);
      assert.match(stdout, /^GPU 0: NVIDIA A100-SXM4-40GB \(UUID: GPU-[0-9a-f-]{36}\)\n(.*\n){2}GPU 3: NVIDIA GeForce RTX 4090 \(UUID: GPU-[0-9a-f-]{36}\)\n$/);
    });

    it('fails with exit 9 and the driver message when broken', () => {
      const { code, stdout } = fake(['-L'], 'broken-driver.json');
      assert.equal(code, 9);
      assert.equal(stdout.split('\n')[0], DRIVER_FAILURE);
    });
  });
});
