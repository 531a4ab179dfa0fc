import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GPU_QUERY_ARGS, PROCESS_QUERY_ARGS, parseComputeApps, parseGpuQuery } from '../../../runner/src/hosts/nvidia-smi';

const MIB = 1024 * 1024;
const UUID0 = 'GPU-5ef121db-e36a-f898-0288-aa75be0e76a5';
const UUID1 = 'GPU-2a99bd02-c605-2648-e2b3-aaade22e68fd';

describe('nvidia-smi GPU query parsing', () => {
  it('reads the real noheader,nounits rows, memory in bytes', () => {
    const csv = [
      `0, ${UUID0}, NVIDIA A100-SXM4-40GB, 40960, 17412, 37, 550.54.15`,
      `1, ${UUID1}, NVIDIA H100 80GB HBM3, 81559, 0, 0, 550.54.15`,
      '',
    ].join('\n');
    assert.deepEqual(parseGpuQuery(csv), [
      { index: 0, uuid: UUID0, name: 'NVIDIA A100-SXM4-40GB', memoryTotalBytes: 40960 * MIB, memoryUsedBytes: 17412 * MIB, utilizationPercent: 37 },
      { index: 1, uuid: UUID1, name: 'NVIDIA H100 80GB HBM3', memoryTotalBytes: 81559 * MIB, memoryUsedBytes: 0, utilizationPercent: 0 },
    ]);
  });

  it('reads rows with units too', () => {
    assert.deepEqual(parseGpuQuery(`0, ${UUID0}, NVIDIA A100-SXM4-40GB, 40960 MiB, 1024 MiB, 37 %, 550.54.15`), [
      { index: 0, uuid: UUID0, name: 'NVIDIA A100-SXM4-40GB', memoryTotalBytes: 40960 * MIB, memoryUsedBytes: 1024 * MIB, utilizationPercent: 37 },
    ]);
  });

  it('maps [N/A] and [Not Supported] to null utilization and 0 memory', () => {
    const [gpu] = parseGpuQuery(`0, ${UUID0}, NVIDIA A100-SXM4-40GB, 40960, [N/A], [Not Supported], [N/A]`);
    assert.deepEqual(gpu, { index: 0, uuid: UUID0, name: 'NVIDIA A100-SXM4-40GB', memoryTotalBytes: 40960 * MIB, memoryUsedBytes: 0, utilizationPercent: null });
  });

  it('tolerates extra spaces, tabs and CRLF line ends', () => {
    const gpus = parseGpuQuery(`  0 ,  ${UUID0} ,   Tesla T4  ,15360,\t3,  12 , 535.104.05  \r\n\r\n`);
    assert.deepEqual(gpus.map((g) => [g.index, g.uuid, g.name, g.memoryUsedBytes, g.utilizationPercent]), [[0, UUID0, 'Tesla T4', 3 * MIB, 12]]);
  });

  it('keeps a comma inside a GPU name, since the other fields are counted from both ends', () => {
    assert.equal(parseGpuQuery(`0, ${UUID0}, Weird, Name, 1, 0, 0, 550.54.15`)[0]?.name, 'Weird, Name');
  });

  it('reads empty output as no GPUs', () => {
    assert.deepEqual(parseGpuQuery(''), []);
    assert.deepEqual(parseGpuQuery('\n  \n'), []);
  });

  it('leaves out headers, messages and shifted or garbled rows', () => {
    const csv = [
      'index, uuid, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%], driver_version',
      'No devices were found',
      `0, ${UUID0}, NVIDIA A100-SXM4-40GB, 40960, 0, 0`, // a field short
      `x, ${UUID0}, NVIDIA A100-SXM4-40GB, 40960, 0, 0, 550.54.15`,
      `0, 40960, NVIDIA A100-SXM4-40GB, ${UUID0}, 0, 0, 550.54.15`,
      `0, ${UUID0}, NVIDIA A100-SXM4-40GB, lots, 0, 0, 550.54.15`,
      `1, ${UUID1}, NVIDIA A100-SXM4-40GB, 40960, 0, 0, 550.54.15`,
    ].join('\n');
    assert.deepEqual(parseGpuQuery(csv).map((g) => g.index), [1]);
  });

  it('never throws, whatever it is given', () => {
    fc.assert(fc.property(fc.string(), (text) => Array.isArray(parseGpuQuery(text))));
    const cell = fc.constantFrom('0', '12', '[N/A]', '', ' ', 'GPU-1', 'MIG-x', '40960 MiB', '37 %', '-1', '1e3', 'NaN', ',');
    fc.assert(fc.property(fc.array(fc.array(cell, { maxLength: 9 }), { maxLength: 5 }), (rows) => {
      const gpus = parseGpuQuery(rows.map((row) => row.join(', ')).join('\n'));
      return gpus.every((g) => Number.isInteger(g.index) && g.memoryTotalBytes >= 0 && (g.utilizationPercent === null || g.utilizationPercent >= 0));
    }));
  });
});

describe('nvidia-smi compute-apps parsing', () => {
  it('reads the real rows, memory in bytes', () => {
    assert.deepEqual(parseComputeApps(`4242, ${UUID0}, 17408\n977, ${UUID1}, 512\n`), [
      { pid: 4242, gpuUuid: UUID0, usedMemoryBytes: 17408 * MIB },
      { pid: 977, gpuUuid: UUID1, usedMemoryBytes: 512 * MIB },
    ]);
  });

  it('keeps a process whose memory is [N/A] (containers, WSL), with 0 bytes', () => {
    assert.deepEqual(parseComputeApps(`4242, ${UUID0}, [N/A]`), [{ pid: 4242, gpuUuid: UUID0, usedMemoryBytes: 0 }]);
  });

  it('reads units, extra spaces and CRLF', () => {
    assert.deepEqual(parseComputeApps(` 4242 ,${UUID0} ,  17408 MiB \r\n`), [{ pid: 4242, gpuUuid: UUID0, usedMemoryBytes: 17408 * MIB }]);
  });

  it('reads empty output (noheader, nothing running) as no processes', () => {
    assert.deepEqual(parseComputeApps(''), []);
    assert.deepEqual(parseComputeApps('\n'), []);
  });

  it('skips the header and the "No running processes found" message', () => {
    assert.deepEqual(parseComputeApps(`pid, gpu_uuid, used_gpu_memory [MiB]\nNo running processes found\n4242, ${UUID0}, 1`), [
      { pid: 4242, gpuUuid: UUID0, usedMemoryBytes: MIB },
    ]);
  });

  it('never throws, whatever it is given', () => {
    fc.assert(fc.property(fc.string(), (text) => Array.isArray(parseComputeApps(text))));
    assert.deepEqual(parseComputeApps('\u0000,,,\n-1, GPU-x, 3\n0, GPU-x, 3\n12, [N/A], 3\n12, GPU-x, lots'), []);
  });
});

describe('nvidia-smi query arguments', () => {
  it('ask for exactly the fields the parsers read, without header or units', () => {
    assert.deepEqual(GPU_QUERY_ARGS, ['--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu,driver_version', '--format=csv,noheader,nounits']);
    assert.deepEqual(PROCESS_QUERY_ARGS, ['--query-compute-apps=pid,gpu_uuid,used_memory', '--format=csv,noheader,nounits']);
    assert.ok(Object.isFrozen(GPU_QUERY_ARGS) && Object.isFrozen(PROCESS_QUERY_ARGS));
  });
});
