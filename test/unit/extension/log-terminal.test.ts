import assert from 'node:assert/strict';
import type { JobView, LogChunk } from '../../../common/protocol';
import { LogFollower, type LogSource } from '../../../extension/src/logs/log-follower';
import { TerminalText } from '../../../extension/src/logs/terminal-text';

describe('extension: log terminal text', () => {
  it('turns lone \\n into \\r\\n and passes \\r and ANSI colours through', () => {
    const text = new TerminalText();
    assert.equal(text.render('epoch 1\n\x1b[32mok\x1b[0m\r\n 10%\r 20%\r100%\n'), 'epoch 1\r\n\x1b[32mok\x1b[0m\r\n 10%\r 20%\r100%\r\n');
    assert.equal(text.render('\n\n'), '\r\n\r\n');
  });

  it('does not double a \\r\\n split across chunks', () => {
    const text = new TerminalText();
    assert.equal(text.render('a\r') + text.render('\nb'), 'a\r\nb');
  });

  it('puts its own lines on a line of their own', () => {
    const text = new TerminalText();
    assert.equal(text.line('start'), 'start\r\n');
    text.render('50%\r');
    assert.equal(text.line('done'), '\r\ndone\r\n');
  });
});

/** A daemon's logs as drover/logs serves them: per attempt, read at most `maxBytes` at a time. */
class FakeDaemon implements LogSource {
  readonly attempts: string[] = [];
  state: JobView['state'] = 'running';
  reads: { attempt: number; offset: number }[] = [];
  constructor(private readonly maxBytes = 5) {}

  append(attempt: number, text: string): LogChunk {
    const before = Buffer.byteLength(this.attempts[attempt - 1] ?? '');
    this.attempts[attempt - 1] = (this.attempts[attempt - 1] ?? '') + text;
    return { jobId: 1, attempt, offset: before, data: text, bytes: Buffer.byteLength(text), complete: false };
  }

  async logs({ attempt, offset }: { id: number; attempt: number; offset: number }): Promise<LogChunk> {
    this.reads.push({ attempt, offset });
    const bytes = Buffer.from(this.attempts[attempt - 1] ?? '');
    let end = Math.min(bytes.length, offset + this.maxBytes);
    // Never split a character, as the daemon promises.
    while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end++;
    const data = bytes.subarray(offset, end).toString();
    const ended = attempt < this.attempts.length || this.state !== 'running';
    return { jobId: 1, attempt, offset, data, bytes: end - offset, complete: ended && end >= bytes.length };
  }

  async job(): Promise<JobView> {
    return this.view();
  }

  view(): JobView {
    return {
      id: 1, submissionId: 1, specName: 'train', key: 'train', state: this.state, priority: 0, resources: { gpus: { count: 0 } }, params: {},
      attempts: this.attempts.length, createdAt: 0, startedAt: 0, ...(this.state !== 'running' && { endedAt: 3_000, exitCode: this.state === 'succeeded' ? 0 : 1 }),
    };
  }
}

function follower(): { follower: LogFollower; output: () => string } {
  const written: string[] = [];
  return { follower: new LogFollower(1, (data) => written.push(data)), output: () => written.join('') };
}

describe('extension: log follower', () => {
  it('reads a run from offset 0 in as many reads as it takes', async () => {
    const daemon = new FakeDaemon(4);
    daemon.append(1, 'line one\nline two\n');
    const { follower: logs, output } = follower();
    await logs.catchUp(daemon);
    assert.equal(output(), 'line one\r\nline two\r\n');
    assert.equal(logs.offset, 18);
    assert.ok(daemon.reads.length >= 5);
  });

  it('writes each byte once whether it came by event or by read, slicing overlaps by bytes', async () => {
    const daemon = new FakeDaemon(100);
    const first = daemon.append(1, 'héllo ');
    const { follower: logs, output } = follower();
    await logs.catchUp(daemon);
    logs.onEvent(first, daemon); // the same bytes again: dropped
    const second = daemon.append(1, 'wörld\n');
    // An event that overlaps what was written: only the new part shows.
    logs.onEvent({ ...first, data: 'héllo wörld\n', bytes: Buffer.byteLength('héllo wörld\n') }, daemon);
    logs.onEvent(second, daemon);
    assert.equal(output(), 'héllo wörld\r\n');
    assert.equal(logs.offset, Buffer.byteLength('héllo wörld\n'));
  });

  it('fills a gap in the events by reading from its offset', async () => {
    const daemon = new FakeDaemon(3);
    const { follower: logs, output } = follower();
    logs.onEvent(daemon.append(1, 'a\n'), daemon);
    daemon.append(1, 'b\n'); // this event was lost
    const third = daemon.append(1, 'c\n');
    logs.onEvent(third, daemon);
    await logs.catchUp(daemon);
    assert.equal(output(), 'a\r\nb\r\nc\r\n');
  });

  it('resumes from its offset after a dropped connection, reading only what it missed', async () => {
    const daemon = new FakeDaemon(1000);
    const { follower: logs, output } = follower();
    logs.onEvent(daemon.append(1, 'before\n'), daemon);
    const offset = logs.offset;
    daemon.append(1, 'while away\n');
    daemon.reads = [];
    await logs.catchUp(daemon);
    assert.deepEqual(daemon.reads[0], { attempt: 1, offset });
    assert.equal(output(), 'before\r\nwhile away\r\n');
  });

  it('buffers events that arrive during a catch-up and drops their duplicates', async () => {
    const daemon = new FakeDaemon(2);
    daemon.append(1, 'abcdef');
    const { follower: logs, output } = follower();
    const catching = logs.catchUp(daemon);
    logs.onEvent({ jobId: 1, attempt: 1, offset: 2, data: 'cdef', bytes: 4, complete: false }, daemon);
    const late = daemon.append(1, 'gh');
    logs.onEvent(late, daemon);
    await catching;
    assert.equal(output(), 'abcdefgh');
  });

  it('moves on through attempts, marking each, and ends with the outcome once', async () => {
    const daemon = new FakeDaemon(100);
    const { follower: logs, output } = follower();
    logs.onEvent(daemon.append(1, 'try 1\n'), daemon);
    logs.onEvent({ jobId: 1, attempt: 1, offset: 6, data: '', bytes: 0, complete: true }, daemon);
    logs.onEvent(daemon.append(2, 'try 2\n'), daemon);
    daemon.append(3, 'try 3\n'); // attempt 3's events were missed: a catch-up reads it
    daemon.state = 'failed';
    await logs.finish({ ...daemon.view(), reason: 'exited with 1' }, daemon);
    await logs.finish(daemon.view(), daemon);
    logs.onEvent(daemon.append(3, 'after the end\n'), daemon);
    const text = output();
    const dim = (note: string) => `\x1b[2m── ${note} ──\x1b[0m\r\n`;
    assert.ok(text.startsWith(`try 1\r\n${dim('attempt 2')}try 2\r\n${dim('attempt 3')}try 3\r\n`), JSON.stringify(text));
    assert.equal(text.match(/── run 1 train failed \(exit 1\) after 3s: exited with 1 ──/g)?.length, 1);
    assert.ok(!text.includes('after the end'));
  });

  it('waits for a queued run: nothing to read, nothing written', async () => {
    const daemon = new FakeDaemon();
    const { follower: logs, output } = follower();
    await logs.catchUp(daemon);
    assert.equal(output(), '');
    assert.equal(logs.attempt, 1);
    logs.onEvent(daemon.append(1, 'started\n'), daemon);
    assert.equal(output(), 'started\r\n');
  });
});
