import assert from 'node:assert/strict';
import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver';
import type { GpuView, HostView } from '../../../common/protocol/daemon';
import { clusterDiagnostics } from '../../../language-server/src/service/cluster';
import { SpecDocument } from '../../../language-server/src/service/spec-document';
import { lines, marked } from '../../support/marked';

const GiB = 2 ** 30;
const A100_40 = { name: 'NVIDIA A100-SXM4-40GB', memory: 40 * GiB };
const A100_80 = { name: 'NVIDIA A100-SXM4-80GB', memory: 80 * GiB };
const RTX_4090 = { name: 'NVIDIA GeForce RTX 4090', memory: 24 * GiB };

function gpus(count: number, model: { name: string; memory: number }): GpuView[] {
  return Array.from({ length: count }, (_, index) => ({
    index,
    uuid: `GPU-${model.name}-${index}`,
    name: model.name,
    memoryTotalBytes: model.memory,
    memoryUsedBytes: 0,
    utilizationPercent: 0,
    foreignPids: [],
  }));
}

function host(name: string, cpus: number, memoryBytes: number, gpuList: GpuView[], state: HostView['state'] = 'up'): HostView {
  return { name, kind: 'local', state, os: 'linux', cpus, memoryBytes, gpus: gpuList, updatedAt: 0 };
}

/** A small pool: this machine with one consumer card, a box with two 40 GB A100s, one with four 80 GB A100s. */
const POOL: HostView[] = [
  host('local', 8, 32e9, gpus(1, RTX_4090)),
  host('box-1', 32, 256 * GiB, gpus(2, A100_40)),
  host('box-2', 64, 512e9, gpus(4, A100_80)),
];

/**
 * The cluster diagnostics of a fixture: each `⟪…⟫` must be the range of exactly one diagnostic,
 * in order. Returns `code: message` for each, in document order.
 */
function check(source: string, hosts: readonly HostView[] = POOL): string[] {
  const fixture = marked(source);
  const document = new SpecDocument('file:///tmp/ws/test.drover.yaml', 1, fixture.text);
  const found = clusterDiagnostics(document, hosts);
  const sorted = [...found].sort((a, b) => document.offsetAt(a.range.start) - document.offsetAt(b.range.start));
  assert.deepEqual(
    sorted.map((diagnostic) => diagnostic.range),
    fixture.ranges.map((range) => document.rangeOf(range)),
    `ranges of ${JSON.stringify(sorted.map((diagnostic) => diagnostic.message))}`,
  );
  for (const diagnostic of found) {
    assert.equal(diagnostic.severity, DiagnosticSeverity.Warning);
    assert.equal(diagnostic.source, 'drover');
  }
  return sorted.map((diagnostic) => `${String(diagnostic.code)}: ${diagnostic.message}`);
}

function diagnosticsOf(source: string, hosts: readonly HostView[] = POOL): Diagnostic[] {
  return clusterDiagnostics(new SpecDocument('file:///tmp/ws/test.drover.yaml', 1, marked(source).text), hosts);
}

describe('language server: cluster diagnostics', () => {
  it('has no opinion without hosts (the daemon is not reachable)', () => {
    const impossible = lines('run: x', 'resources: { gpus: "H100:64", cpus: 4096, memory: 1PB }', 'placement: { hosts: [nowhere] }');
    assert.deepEqual(check(impossible, []), []);
    assert.deepEqual(check('', POOL), []);
  });

  it('says nothing about a job that fits', () => {
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: "A100:2", cpus: 4, memory: 16GB }', 'placement: { hosts: [box-1, local] }')), []);
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: { count: 4, type: A100, memory: 80GB }, cpus: 64, memory: 512GB }')), []);
    assert.deepEqual(check(lines('run: x', 'resources:', '  gpus: 1', '  cpus: 8')), []);
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: 0, cpus: 2 }'), [host('cpu-only', 4, 8e9, [])]), []);
    assert.deepEqual(check(lines('run: x')), []);
  });

  it('gpu-capacity: more GPUs than any one host has, naming the largest (flow form)', () => {
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪8⟫, cpus: 4 }')), ['gpu-capacity: no host has 8 GPUs; the largest, box-2, has 4']);
  });

  it('gpu-capacity: "A100:6" in block form, on the value with its quotes', () => {
    assert.deepEqual(check(lines('run: x', 'resources:', '  cpus: 4', '  gpus: ⟪"A100:6"⟫')), ['gpu-capacity: no host has 6 GPUs of type A100; box-2 has 4 A100']);
    assert.deepEqual(check(lines('run: x', 'resources:', '  gpus: ⟪RTX4090:2⟫')), ['gpu-capacity: no host has 2 GPUs of type RTX4090; local has 1 RTX4090']);
  });

  it('gpu-capacity: {count, type, memory}, flow and block, beyond the most memory a GPU has', () => {
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪{ count: 1, type: A100, memory: 100GB }⟫ }')), [
      'gpu-capacity: no host has a GPU of type A100 with 100 GB; the most is 80 GiB (85.9 GB) on box-2',
    ]);
    const block = lines('run: x', 'resources:', '  gpus:', '    ⟪count: 1', '    memory: 96GiB⟫', '  cpus: 2');
    assert.deepEqual(check(block), ['gpu-capacity: no host has a GPU with 96 GiB; the most is 80 GiB on box-2']);
  });

  it('gpu-capacity: enough memory per GPU on some, but not as many of them', () => {
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪{ count: 6, memory: 40GB }⟫ }')), ['gpu-capacity: no host has 6 GPUs with 40 GB; box-2 has 4 GPUs with 40 GB']);
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪{ count: 3, type: A100, memory: 40GiB }⟫ }'), POOL.slice(0, 2)), [
      'gpu-capacity: no host has 3 GPUs of type A100 with 40 GiB; box-1 has 2 A100 with 40 GiB',
    ]);
  });

  it('gpu-capacity: a cluster without GPUs', () => {
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪2⟫ }'), [host('cpu-only', 4, 8e9, [])]), ['gpu-capacity: no host has a GPU; the job asks for 2']);
  });

  it('gpu-type: a type no host has, listing the models the cluster has', () => {
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪"H100:1"⟫ }')), ['gpu-type: no host has a GPU of type H100 (the cluster has: RTX 4090, A100)']);
    const block = lines('run: x', 'resources:', '  gpus:', '    ⟪type: V100⟫');
    assert.deepEqual(check(block, [host('cpu-only', 4, 8e9, [])]), ['gpu-type: no host has a GPU of type V100 (the cluster has no GPUs)']);
    // A type alone is one GPU; the memory does not matter when the type is missing altogether.
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪{ type: T4, memory: 8GB }⟫ }')), ['gpu-type: no host has a GPU of type T4 (the cluster has: RTX 4090, A100)']);
  });

  it('judges capacity only on the hosts placement allows', () => {
    // Fits on box-2, which placement leaves out.
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪4⟫ }', 'placement: { hosts: [box-1, local] }')), [
      'gpu-capacity: no host in placement.hosts has 4 GPUs; the largest, box-1, has 2',
    ]);
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪{ memory: 80GB }⟫ }', 'placement:', '  hosts:', '    - box-1')), [
      'gpu-capacity: no host in placement.hosts has a GPU with 80 GB; the most is 40 GiB (42.95 GB) on box-1',
    ]);
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪RTX4090⟫ }', 'placement: { hosts: [box-1] }')), [
      'gpu-type: no host in placement.hosts has a GPU of type RTX4090 (they have: A100); local has 1 RTX4090',
    ]);
    assert.deepEqual(check(lines('run: x', 'resources: { cpus: ⟪48⟫ }', 'placement: { hosts: [local, box-1] }')), [
      'cpu-capacity: no host in placement.hosts has 48 CPUs; the largest, box-1, has 32',
    ]);
    // The same requests without placement fit on box-2.
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: 4, cpus: 48 }')), []);
  });

  it('judges placement on the named hosts that exist, and not at all when none does', () => {
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪3⟫ }', 'placement: { hosts: [⟪box-7⟫, box-1] }')), [
      'gpu-capacity: no host in placement.hosts has 3 GPUs; the largest, box-1, has 2',
      'unknown-host: box-7 is not in the pool (hosts: local, box-1, box-2); add it with drover hosts add box-7',
    ]);
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: 64 }', 'placement: { hosts: [⟪gpu-box-9⟫] }')), [
      'unknown-host: gpu-box-9 is not in the pool (hosts: local, box-1, box-2); add it with drover hosts add gpu-box-9',
    ]);
  });

  it('unknown-host: on each entry not in the pool, block and flow lists, with a did-you-mean', () => {
    assert.deepEqual(check(lines('run: x', 'placement:', '  hosts:', '    - local', '    - ⟪gpu-box-9⟫', '    - box-2')), [
      'unknown-host: gpu-box-9 is not in the pool (hosts: local, box-1, box-2); add it with drover hosts add gpu-box-9',
    ]);
    const typo = diagnosticsOf(lines('run: x', 'placement: { hosts: [box1] }'));
    assert.equal(typo.length, 1);
    assert.equal(typo[0]!.message, "box1 is not in the pool (hosts: local, box-1, box-2); did you mean 'box-1'? Otherwise add it with drover hosts add box1");
    assert.deepEqual(typo[0]!.data, { suggestion: 'box-1' });
  });

  it('unknown-host: local counts only when a host named local is in the pool', () => {
    const spec = lines('run: x', 'placement: { hosts: [⟪local⟫] }');
    assert.deepEqual(check(spec.replace(/[⟪⟫]/g, '')), []);
    assert.deepEqual(check(spec, POOL.slice(1)), ['unknown-host: local is not in the pool (hosts: box-1, box-2); add it with drover hosts add local']);
  });

  it('cpu-capacity and memory-capacity: beyond the largest host, on each value', () => {
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: 1, cpus: ⟪128⟫, memory: ⟪1TB⟫ }')), [
      'cpu-capacity: no host has 128 CPUs; the largest, box-2, has 64',
      'memory-capacity: no host has 1 TB of memory; the largest, box-2, has 512 GB',
    ]);
    assert.deepEqual(check(lines('run: x', 'resources:', '  memory: ⟪600GiB⟫')), ['memory-capacity: no host has 600 GiB of memory; the largest, box-2, has 512 GB (476.84 GiB)']);
    assert.deepEqual(check(lines('run: x', 'resources: { memory: ⟪300GiB⟫ }', 'placement: { hosts: [box-1] }')), [
      'memory-capacity: no host in placement.hosts has 300 GiB of memory; the largest, box-1, has 256 GiB',
    ]);
  });

  it('checks each job of a workflow at its own resources', () => {
    const workflow = lines(
      'jobs:',
      '  prep:',
      '    run: python prep.py',
      '    resources: { cpus: 16, memory: 64GB }',
      '  train:',
      '    needs: [prep]',
      '    run: python train.py',
      '    resources:',
      '      gpus: ⟪"A100:8"⟫',
      '      cpus: ⟪96⟫',
      '    placement: { hosts: [box-2, ⟪box-3⟫] }',
      '  eval:',
      '    run: python eval.py',
      '    resources: { gpus: ⟪H100⟫ }',
    );
    assert.deepEqual(check(workflow), [
      'gpu-capacity: no host in placement.hosts has 8 GPUs of type A100; box-2 has 4 A100',
      'cpu-capacity: no host in placement.hosts has 96 CPUs; the largest, box-2, has 64',
      'unknown-host: box-3 is not in the pool (hosts: local, box-1, box-2); add it with drover hosts add box-3',
      'gpu-type: no host has a GPU of type H100 (the cluster has: RTX 4090, A100)',
    ]);
  });

  it('a degraded or unreachable host is in the pool, but counts only what it reports', () => {
    const pool = [...POOL, host('box-3', 0, 0, [], 'unreachable'), host('box-4', 128, 1e12, gpus(8, A100_80), 'degraded')];
    // Named in placement: no unknown-host; no GPUs reported, so none counted; no CPUs or memory reported, so no opinion on them.
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪1⟫, cpus: 8, memory: 16GB }', 'placement: { hosts: [box-3] }'), pool), [
      'gpu-capacity: no host in placement.hosts has a GPU; the job asks for 1; not counted: box-3 (unreachable)',
    ]);
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: ⟪"A100:2"⟫ }', 'placement: { hosts: [box-3, local] }'), pool), [
      'gpu-type: no host in placement.hosts has a GPU of type A100 (they have: RTX 4090); box-4 has 8 A100; not counted: box-3 (unreachable)',
    ]);
    // A degraded host that still reports its GPUs counts with them.
    assert.deepEqual(check(lines('run: x', 'resources: { gpus: "A100:8", cpus: 128, memory: 1TB }'), pool), []);
  });
});
