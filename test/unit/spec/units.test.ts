import assert from 'node:assert/strict';
import { Cron } from 'croner';
import { checkCron, formatSize, gpuTypeMatches, isDailyTime, parseDuration, parseGpuRequest, parseSize, type Parsed } from '../../../common/spec';

function value<T>(result: Parsed<T>): T {
  assert.ok(result.ok, result.ok ? '' : result.message);
  return result.value;
}

function failure<T>(result: Parsed<T>): string {
  assert.ok(!result.ok, `expected a failure, got ${JSON.stringify(result)}`);
  return result.message;
}

describe('units', () => {
  it('reads sizes with decimal and binary units', () => {
    assert.equal(value(parseSize('16GB')), 16e9);
    assert.equal(value(parseSize('16G')), 16e9);
    assert.equal(value(parseSize('512MiB')), 512 * 2 ** 20);
    assert.equal(value(parseSize('1.5 Gi')), 1.5 * 2 ** 30);
    assert.equal(value(parseSize('100b')), 100);
    assert.equal(value(parseSize('2TiB')), 2 * 2 ** 40);
  });

  it('refuses sizes without a unit or with an unknown one, saying what to write', () => {
    assert.match(failure(parseSize(16)), /needs a unit: write 16GB or 16GiB/);
    assert.match(failure(parseSize('16')), /needs a unit/);
    assert.match(failure(parseSize('16 XB')), /unknown size unit 'XB'/);
    assert.match(failure(parseSize('lots')), /not a size/);
  });

  it('reads durations, compound ones too, and bare numbers as seconds', () => {
    assert.equal(value(parseDuration('90s')), 90);
    assert.equal(value(parseDuration('45m')), 2700);
    assert.equal(value(parseDuration('2h')), 7200);
    assert.equal(value(parseDuration('1h30m')), 5400);
    assert.equal(value(parseDuration('1d')), 86400);
    assert.equal(value(parseDuration('500ms')), 0.5);
    assert.equal(value(parseDuration(30)), 30);
    assert.match(failure(parseDuration('2 hours')), /not a duration; write e.g. 90s/);
    assert.match(failure(parseDuration(-1)), /negative/);
  });

  it('reads every form of GPU request', () => {
    assert.deepEqual(value(parseGpuRequest(2)), { count: 2 });
    assert.deepEqual(value(parseGpuRequest('4')), { count: 4 });
    assert.deepEqual(value(parseGpuRequest('A100:2')), { count: 2, type: 'A100' });
    assert.deepEqual(value(parseGpuRequest('H100')), { count: 1, type: 'H100' });
    assert.deepEqual(value(parseGpuRequest({ count: 2, type: 'A100', memory: '40GB' })), { count: 2, type: 'A100', memoryBytes: 40e9 });
    assert.deepEqual(value(parseGpuRequest({ memory: '24GiB' })), { count: 1, memoryBytes: 24 * 2 ** 30 });
  });

  it('refuses malformed GPU requests', () => {
    assert.match(failure(parseGpuRequest('A100:x')), /not a GPU request/);
    assert.match(failure(parseGpuRequest('A100:0')), /no GPUs of a type/);
    assert.match(failure(parseGpuRequest(1.5)), /whole number/);
    assert.match(failure(parseGpuRequest({ count: 0 })), /`count` is a whole number ≥ 1/);
    assert.match(failure(parseGpuRequest({ memory: 40 })), /needs a unit/);
  });

  it('checks cron expressions with the scheduler library', () => {
    assert.equal(value(checkCron('0 2 * * *')), '0 2 * * *');
    assert.equal(value(checkCron('*/15 9-17 * * MON-FRI')), '*/15 9-17 * * MON-FRI');
    assert.equal(value(checkCron('30 0 2 * * *')), '30 0 2 * * *');
    assert.equal(value(checkCron('@daily')), '@daily');
    assert.match(failure(checkCron('61 * * * *')), /invalid cron expression '61 \* \* \* \*': .*minute/);
    assert.match(failure(checkCron('0 2 * *')), /has 5 fields .* has 4/);
    assert.match(failure(checkCron('0 0 31 2 *')), /never fires/);
    assert.match(failure(checkCron(5)), /cron expression in quotes/);
  });

  it('passes without croner only the daily times croner accepts and fires for', () => {
    let taken = 0;
    for (const minute of ['*', '0', '7', '30', '59', '60', '00', '07', '5a', '-1']) {
      for (const hour of ['*', '0', '9', '23', '24', '02', '1.5']) {
        const fields = [minute, hour, '*', '*', '*'];
        if (!isDailyTime(fields)) continue;
        taken++;
        assert.notEqual(new Cron(fields.join(' '), { paused: true }).nextRun(), null, fields.join(' '));
      }
    }
    assert.equal(taken, 5 * 4);
    assert.ok(!isDailyTime(['0', '2', '1', '*', '*']));
    assert.ok(!isDailyTime(['0', '2', '*', '*', '*', '*']));
  });

  it('formats sizes for people', () => {
    assert.equal(formatSize(16 * 2 ** 30), '16 GiB');
    assert.equal(formatSize(16e9), '16 GB');
    assert.equal(formatSize(512), '512 B');
    assert.equal(formatSize(0), '0 B');
  });

  it('matches GPU types within model names, ignoring case, spaces and dashes', () => {
    assert.ok(gpuTypeMatches('NVIDIA GeForce RTX 4090', 'RTX4090'));
    assert.ok(gpuTypeMatches('NVIDIA GeForce RTX 4090', '4090'));
    assert.ok(gpuTypeMatches('NVIDIA A100-SXM4-40GB', 'a100'));
    assert.ok(!gpuTypeMatches('NVIDIA A100-SXM4-40GB', 'H100'));
  });
});
