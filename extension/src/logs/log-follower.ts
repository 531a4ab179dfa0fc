import { FINAL_STATES, type JobView, type LogChunk } from '../../../common/protocol';
import { describeOutcome, formatElapsed, runLabel } from '../model/format';
import { TerminalText } from './terminal-text';

/** What a follower asks the daemon (drover/logs and drover/job, as the connection answers them). */
export interface LogSource {
  logs(params: { id: number; attempt: number; offset: number }): Promise<LogChunk>;
  job(id: number): Promise<JobView>;
}

const DIM = '\x1b[2m';
const RESET = '\x1b[0m';
const OUTCOME_COLOR: Record<string, string> = { succeeded: '\x1b[32m', failed: '\x1b[31m', cancelled: '\x1b[33m', skipped: '\x1b[33m', stopped: '\x1b[33m' };

/**
 * Follows one run's output into a terminal, attempt after attempt. It keeps where it is (attempt
 * and byte offset), writes each byte once whether it comes from a subscription event or a read,
 * and catches up from its offset whenever it may have missed something (a gap in the events, a
 * reconnect): the daemon's log files are the truth and events are only a fast path.
 */
export class LogFollower {
  /** The attempt being shown (attempts are numbered from 1) and the bytes of it written so far. */
  attempt = 1;
  offset = 0;
  private attemptComplete = false;
  private finished = false;
  private catching: Promise<void> | undefined;
  private catchAgain = false;
  /** Events that arrived during a catch-up: applied after it, duplicates dropped by offset. */
  private pending: LogChunk[] = [];
  private readonly text = new TerminalText();

  constructor(
    readonly jobId: number,
    private readonly write: (data: string) => void,
  ) {}

  get done(): boolean {
    return this.finished;
  }

  /** A chunk pushed by the daemon (drover/event/log); a gap before it starts a catch-up. */
  onEvent(chunk: LogChunk, source: LogSource): void {
    if (chunk.jobId !== this.jobId || this.finished) return;
    if (this.catching) {
      this.pending.push(chunk);
      return;
    }
    if (!this.apply(chunk)) void this.catchUp(source).catch(() => undefined);
  }

  /**
   * Reads from the current offset until the daemon has nothing more, moving on through later
   * attempts. Concurrent calls share one pass (and ask for one more if they came mid-way).
   */
  catchUp(source: LogSource): Promise<void> {
    if (this.catching) {
      this.catchAgain = true;
      return this.catching;
    }
    this.catching = (async () => {
      do {
        this.catchAgain = false;
        await this.readToEnd(source);
      } while (this.catchAgain);
    })().finally(() => {
      this.catching = undefined;
      const pending = this.pending.splice(0);
      let gap = false;
      for (const chunk of pending) if (!this.finished && !this.apply(chunk)) gap = true;
      if (gap) void this.catchUp(source).catch(() => undefined);
    });
    return this.catching;
  }

  /** The run ended: read what is left, then say how it went, once. */
  async finish(job: JobView, source: LogSource): Promise<void> {
    if (this.finished || !FINAL_STATES.includes(job.state)) return;
    await this.catchUp(source);
    if (this.finished) return;
    this.finished = true;
    const took = job.startedAt !== undefined && job.endedAt !== undefined ? ` after ${formatElapsed(job.endedAt - job.startedAt)}` : '';
    const why = job.state !== 'succeeded' && job.reason ? `: ${job.reason}` : '';
    this.write(this.text.line(`${OUTCOME_COLOR[job.state] ?? ''}── run ${runLabel(job)} ${describeOutcome(job)}${took}${why} ──${RESET}`));
  }

  /** A line of our own between the run's output (dim, so it does not pass for output). */
  note(text: string): void {
    this.write(this.text.line(`${DIM}── ${text} ──${RESET}`));
  }

  private async readToEnd(source: LogSource): Promise<void> {
    for (;;) {
      const chunk = await source.logs({ id: this.jobId, attempt: this.attempt, offset: this.offset });
      if (chunk.bytes > 0 && this.apply(chunk)) continue;
      if (chunk.complete) this.attemptComplete = true;
      const job = await source.job(this.jobId);
      if (job.attempts <= this.attempt) return;
      this.nextAttempt();
    }
  }

  /** Writes what is new in a chunk; false when it starts past the offset (something is missing). */
  private apply(chunk: LogChunk): boolean {
    if (chunk.attempt < this.attempt) return true;
    if (chunk.attempt > this.attempt) {
      // A next attempt's first bytes, once this attempt is known to be over, follow on directly.
      if (chunk.attempt !== this.attempt + 1 || chunk.offset !== 0 || !this.attemptComplete) return false;
      this.nextAttempt();
    }
    const end = chunk.offset + chunk.bytes;
    if (chunk.offset > this.offset) return false;
    if (end > this.offset) {
      const fresh = chunk.offset === this.offset ? chunk.data : Buffer.from(chunk.data, 'utf8').subarray(this.offset - chunk.offset).toString('utf8');
      this.write(this.text.render(fresh));
      this.offset = end;
    }
    if (chunk.complete && end >= this.offset) this.attemptComplete = true;
    return true;
  }

  private nextAttempt(): void {
    this.attempt += 1;
    this.offset = 0;
    this.attemptComplete = false;
    this.note(`attempt ${this.attempt}`);
  }
}
