/**
 * Reading the metrics a run reports. This format is part of Drover's public contract: training
 * scripts write it (by hand, or with runner/python/drover_metrics.py), and the runner reads it.
 *
 * ## Form 1: `::metric` lines on stdout or stderr
 *
 *     ::metric step=100 loss=0.23 acc=0.9
 *
 * - A line is a metric line when, after optional leading whitespace, it starts with `::metric`
 *   followed by a space or tab. Every other line is ordinary log output.
 * - Then come `name=value` pairs separated by spaces or tabs (train.py writes single spaces;
 *   more is tolerated). Trailing whitespace is ignored.
 * - A name matches `[A-Za-z_][A-Za-z0-9_./-]*`, so `train/loss` and `lr.group-0` are names.
 * - A value is a finite decimal number: `3`, `-0.5`, `.5`, `1e-3`, `2.5E+10`. `nan`, `inf`,
 *   hex, `1_000`, an empty value, or a number too large for a double is not a value.
 * - `step` is reserved: when present it must be a non-negative integer (`100`, also `1e3`), and
 *   it applies to every other pair of the line. Without it the points have step `null`.
 * - A line is all or nothing: one malformed pair, a bad step, or a name given twice makes the
 *   whole line not a metric line (null), so a reader never records half a line or guesses which
 *   of two values was meant. A line with no metric pairs (`::metric`, `::metric step=5`) is not a
 *   metric line either.
 *
 * ## Form 2: JSON lines in the file named by `$DROVER_METRICS`
 *
 *     {"step": 3, "time": 1700000000.5, "loss": 0.2, "acc": 0.91}
 *
 * - One JSON object per line. `step` (optional, `null` allowed) is as above; `time` (optional)
 *   is when the record was made, in seconds since the epoch, and becomes `at` in milliseconds.
 * - Every other field whose name matches the name pattern and whose value is a finite number is
 *   a metric. Other fields (strings, booleans, objects, null) are ignored, so a record may carry
 *   annotations. Python's `json` writes `NaN` and `Infinity` for non-finite floats; those fields
 *   are ignored too rather than losing the whole record.
 * - A line that is not a JSON object, has a bad step, or carries no metric is null. A name given
 *   twice follows JSON.parse: the last one wins.
 *
 * Log bytes become lines with LineSplitter: `\n`, `\r\n` and a lone `\r` (progress bars redraw
 * with it) each end a line, and lines longer than a limit are cut and marked (see below).
 */
import { StringDecoder } from 'node:string_decoder';

export interface MetricPoint {
  /** The step the record was made at, or null when it named none. */
  step: number | null;
  name: string;
  value: number;
  /** When the record was made, in ms since the epoch, if the record carried a time. */
  at?: number;
}

const PREFIX = '::metric';
const NAME = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
/** Plain decimal numbers only: Number() alone would also take '', '0x1f', 'Infinity' and ' 1 '. */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function isStep(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Points of one `::metric` line, or null when the line is not a well-formed metric line. */
export function parseMetricLine(line: string): MetricPoint[] | null {
  const text = line.trimStart();
  if (!text.startsWith(PREFIX)) return null;
  const separator = text.charAt(PREFIX.length);
  if (separator !== ' ' && separator !== '\t') return null;

  const body = text.slice(PREFIX.length).trim();
  if (body === '') return null;
  const values = new Map<string, number>();
  for (const pair of body.split(/[ \t]+/)) {
    const eq = pair.indexOf('=');
    if (eq < 0) return null;
    const name = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    if (!NAME.test(name) || !DECIMAL.test(raw) || values.has(name)) return null;
    const value = Number(raw);
    if (!Number.isFinite(value)) return null; // e.g. 1e999
    values.set(name, value);
  }

  let step: number | null = null;
  if (values.has('step')) {
    const value = values.get('step');
    if (!isStep(value)) return null;
    step = value;
    values.delete('step');
  }
  if (values.size === 0) return null;
  return [...values].map(([name, value]) => ({ step, name, value }));
}

/** Python's json module writes these for non-finite floats; they are not JSON. */
const PYTHON_NON_FINITE = /"(?:[^"\\]|\\.)*"|(-?(?:NaN|Infinity))/g;

function parseJsonObject(text: string): Record<string, unknown> | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Retry with bare NaN/Infinity (outside strings) read as null, so one diverged value does
    // not cost the record. Only on failure: the common case pays for one parse.
    try {
      parsed = JSON.parse(text.replace(PYTHON_NON_FINITE, (match, token?: string) => (token ? 'null' : match)));
    } catch {
      return null;
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  return parsed as Record<string, unknown>;
}

/** Points of one line of a `$DROVER_METRICS` file, or null when it is not a metric record. */
export function parseMetricJson(line: string): MetricPoint[] | null {
  const text = line.trim();
  if (!text.startsWith('{')) return null; // blank lines and junk, without a parse attempt
  const record = parseJsonObject(text);
  if (record === null) return null;

  const { step: rawStep = null, time } = record;
  let step: number | null = null;
  if (rawStep !== null) {
    if (!isStep(rawStep)) return null;
    step = rawStep;
  }
  const at = typeof time === 'number' && Number.isFinite(time) ? Math.round(time * 1000) : undefined;

  const points: MetricPoint[] = [];
  for (const [name, value] of Object.entries(record)) {
    if (name === 'step' || name === 'time' || !NAME.test(name)) continue;
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    points.push(at === undefined ? { step, name, value } : { step, name, value, at });
  }
  return points.length > 0 ? points : null;
}

export interface LineSplitterOptions {
  /**
   * The longest line kept whole, in UTF-16 code units (default 1 MiB). A longer line is cut at
   * the limit, marked with TRUNCATION_MARK, and the rest of it is dropped: a process that writes
   * without ever ending a line must not grow the runner's memory without bound.
   */
  maxLineLength?: number;
}

/**
 * Appended to a line cut by LineSplitter. It tells a reader of the log what happened, and it
 * makes a cut `::metric` line malformed (the mark cannot be part of a pair), so a cut line can
 * never yield a truncated value.
 */
export const TRUNCATION_MARK = ' …[line truncated by Drover]';

const LF = 10;
const CR = 13;

/** Splits a byte stream of log output into lines, across chunk boundaries. */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private readonly maxLineLength: number;
  /** The start of the current line, not yet ended. */
  private pending = '';
  /** The current line was cut and emitted already; drop the rest of it. */
  private discarding = false;
  /** The last chunk ended in '\r': a '\n' starting the next one belongs to that line end. */
  private afterCR = false;

  constructor(options: LineSplitterOptions = {}) {
    this.maxLineLength = Math.max(1, options.maxLineLength ?? 1024 * 1024);
  }

  /** The lines that `chunk` completes, without their line ends. Blank lines are kept. */
  feed(chunk: Buffer): string[] {
    // StringDecoder holds back the bytes of a UTF-8 character split across chunks.
    return this.split(this.decoder.write(chunk));
  }

  /** The unfinished last line, if any (at the end of the stream), and a reset for reuse. */
  flush(): string[] {
    const lines = this.split(this.decoder.end()); // a dangling partial character becomes U+FFFD
    if (!this.discarding && this.pending !== '') lines.push(this.cut(this.pending));
    this.pending = '';
    this.discarding = false;
    this.afterCR = false;
    return lines;
  }

  private split(text: string): string[] {
    const lines: string[] = [];
    if (text === '') return lines;
    let start = 0;
    if (this.afterCR && text.charCodeAt(0) === LF) start = 1;
    this.afterCR = false;
    for (let i = start; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code !== LF && code !== CR) continue;
      this.endLine(lines, text.slice(start, i));
      if (code === CR) {
        // Emit at the '\r' itself, without waiting to see whether '\n' follows, so progress
        // bars show up as they are drawn.
        if (i + 1 === text.length) this.afterCR = true;
        else if (text.charCodeAt(i + 1) === LF) i++;
      }
      start = i + 1;
    }
    this.append(lines, text.slice(start));
    return lines;
  }

  private endLine(lines: string[], tail: string): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    const line = this.pending + tail;
    this.pending = '';
    lines.push(line.length > this.maxLineLength ? this.cut(line) : line);
  }

  private append(lines: string[], part: string): void {
    if (this.discarding || part === '') return;
    this.pending += part;
    if (this.pending.length > this.maxLineLength) {
      lines.push(this.cut(this.pending));
      this.pending = '';
      this.discarding = true;
    }
  }

  private cut(line: string): string {
    if (line.length <= this.maxLineLength) return line;
    let end = this.maxLineLength;
    const last = line.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end--; // never split a surrogate pair
    return line.slice(0, end) + TRUNCATION_MARK;
  }
}

/** Everything metric-shaped in a log stream: a LineSplitter feeding parseMetricLine. */
export class MetricLineReader {
  private readonly splitter: LineSplitter;

  /**
   * `onPoints` is called once per metric line, with that line's points (never empty). `parse`
   * reads one line: `::metric` stdout lines by default, or `parseMetricJson` for the file named by
   * `$DROVER_METRICS`.
   */
  constructor(
    private readonly onPoints: (points: MetricPoint[]) => void,
    options: LineSplitterOptions & { parse?: (line: string) => MetricPoint[] | null } = {},
  ) {
    this.splitter = new LineSplitter(options);
    this.parse = options.parse ?? parseMetricLine;
  }

  private readonly parse: (line: string) => MetricPoint[] | null;

  feed(chunk: Buffer): void {
    this.deliver(this.splitter.feed(chunk));
  }

  /** Reads the last line when the stream ended without a line end. */
  flush(): void {
    this.deliver(this.splitter.flush());
  }

  private deliver(lines: string[]): void {
    for (const line of lines) {
      const points = this.parse(line);
      if (points) this.onPoints(points);
    }
  }
}
