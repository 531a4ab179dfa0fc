import { Cron } from 'croner';

/** A parse result: the value, or a message saying what is wrong and what is expected. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(message: string): Parsed<T> => ({ ok: false, message });

const SIZE_FACTORS: Record<string, number> = {
  b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, p: 1e15, pb: 1e15,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30,
  ti: 2 ** 40, tib: 2 ** 40, pi: 2 ** 50, pib: 2 ** 50,
};

/** `16GB` → 16e9 bytes, `512MiB` → 536870912. A unit is required: a bare `16` is ambiguous. */
export function parseSize(input: unknown): Parsed<number> {
  if (typeof input !== 'string') return readSize(input);
  // A workflow writes the same few sizes in job after job, each read by the validator and the model.
  let parsed = sizes.get(input);
  if (!parsed) {
    if (sizes.size >= SIZES_KEPT) sizes.clear();
    sizes.set(input, (parsed = readSize(input)));
  }
  return parsed;
}

/** parseSize's results by text (they are never changed), at most SIZES_KEPT of them. */
const sizes = new Map<string, Parsed<number>>();
const SIZES_KEPT = 256;

function readSize(input: unknown): Parsed<number> {
  if (typeof input === 'number') {
    return fail(`a size needs a unit: write ${input}GB or ${input}GiB (GB = 1000³ bytes, GiB = 1024³)`);
  }
  if (typeof input !== 'string') return fail('expected a size such as 16GB or 512MiB');
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input);
  if (!match) return fail(`'${input}' is not a size; write a number and a unit, e.g. 16GB or 512MiB`);
  const unit = match[2]!.toLowerCase();
  if (unit === '') return fail(`a size needs a unit: write ${match[1]}GB or ${match[1]}GiB`);
  const factor = SIZE_FACTORS[unit];
  if (factor === undefined) {
    return fail(`unknown size unit '${match[2]}'; use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)`);
  }
  return ok(Math.round(Number(match[1]) * factor));
}

const DURATION_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `45m`, `2h`, `1h30m`, `1d` → seconds; a bare number is seconds. */
export function parseDuration(input: unknown): Parsed<number> {
  if (typeof input === 'number') return input >= 0 ? ok(input) : fail('a duration cannot be negative');
  if (typeof input !== 'string') return fail('expected a duration such as 90s, 45m, 2h or 1h30m');
  const compact = input.replace(/\s+/g, '');
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(compact)) {
    return fail(`'${input}' is not a duration; write e.g. 90s, 45m, 2h, 1h30m or 1d`);
  }
  let seconds = 0;
  for (const part of compact.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    seconds += Number(part[1]) * DURATION_SECONDS[part[2]!]!;
  }
  return ok(seconds);
}

/** What a run asks of GPUs: all `count` on one host, optionally of a model and a least memory each. */
export interface GpuRequest {
  count: number;
  type?: string;
  memoryBytes?: number;
}

/**
 * Whether a GPU model name satisfies a requested type: the type, ignoring case, spaces, '-' and
 * '_', appears in the name (`RTX4090` and `4090` both match `NVIDIA GeForce RTX 4090`).
 */
export function gpuTypeMatches(modelName: string, type: string): boolean {
  const squeeze = (text: string) => text.toLowerCase().replace(/[\s_-]+/g, '');
  return squeeze(modelName).includes(squeeze(type));
}

/** Whether one GPU can serve a request: its type (if asked) and at least the memory asked per GPU. */
export function gpuSatisfies(gpu: { name: string; memoryTotalBytes?: number }, request: GpuRequest): boolean {
  if (request.type !== undefined && !gpuTypeMatches(gpu.name, request.type)) return false;
  if (request.memoryBytes !== undefined && !(gpu.memoryTotalBytes !== undefined && gpu.memoryTotalBytes >= request.memoryBytes)) return false;
  return true;
}

/** `2`, `"A100:2"`, `"A100"` (one), or `{count, type, memory}`. */
export function parseGpuRequest(input: unknown): Parsed<GpuRequest> {
  if (typeof input === 'number') {
    return Number.isInteger(input) && input >= 0 ? ok({ count: input }) : fail('a GPU count is a whole number ≥ 0');
  }
  if (typeof input === 'string') {
    const text = input.trim();
    if (/^\d+$/.test(text)) return ok({ count: Number(text) });
    const match = /^([A-Za-z][\w.-]*)(?::(\d+))?$/.exec(text);
    if (!match) return fail(`'${input}' is not a GPU request; write a count (2), a type and count ("A100:2") or a type ("A100")`);
    const count = match[2] === undefined ? 1 : Number(match[2]);
    if (count < 1) return fail(`'${input}' asks for no GPUs of a type; drop the type or ask for 1 or more`);
    return ok({ count, type: match[1]! });
  }
  if (input && typeof input === 'object' && !Array.isArray(input)) {
    const fields = input as Record<string, unknown>;
    const count = fields['count'] ?? 1;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) return fail('`count` is a whole number ≥ 1');
    const request: GpuRequest = { count };
    if (fields['type'] !== undefined) {
      if (typeof fields['type'] !== 'string' || fields['type'].trim() === '') return fail('`type` names a GPU model, e.g. A100');
      request.type = fields['type'].trim();
    }
    if (fields['memory'] !== undefined) {
      const memory = parseSize(fields['memory']);
      if (!memory.ok) return memory;
      request.memoryBytes = memory.value;
    }
    return ok(request);
  }
  return fail('expected a GPU count (2), a type and count ("A100:2") or {count, type, memory}');
}

/** `M H * * *` with M and H each `*` or a number in range: what croner accepts and fires for, always. */
export function isDailyTime(fields: readonly string[]): boolean {
  return fields.length === 5 && inRangeOrAny(fields[0]!, 59) && inRangeOrAny(fields[1]!, 23) && fields[2] === '*' && fields[3] === '*' && fields[4] === '*';
}

function inRangeOrAny(field: string, max: number): boolean {
  return field === '*' || (/^(0|[1-9]\d?)$/.test(field) && Number(field) <= max);
}

/** Checks a cron expression (5 fields, 6 with leading seconds, or a nickname such as @daily) with the same library the scheduler uses. */
export function checkCron(input: unknown): Parsed<string> {
  if (typeof input !== 'string') return fail('a schedule is a cron expression in quotes, e.g. "0 2 * * *"');
  const fields = input.trim().split(/\s+/);
  const nickname = fields.length === 1 && fields[0]!.startsWith('@');
  if (!nickname && (fields.length < 5 || fields.length > 6)) {
    return fail(`a cron expression has 5 fields (minute hour day-of-month month day-of-week), '${input}' has ${fields.length}`);
  }
  // The usual schedule, a time of day every day (or every hour, or minute), needs no library: its
  // first use is what the first analysis of a spec with a schedule would otherwise wait for.
  if (isDailyTime(fields)) return ok(input.trim());
  try {
    const cron = new Cron(input, { paused: true });
    if (cron.nextRun() === null) return fail(`the cron expression '${input}' never fires`);
    return ok(input.trim());
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^CronPattern:\s*/, '') : String(error);
    return fail(`invalid cron expression '${input}': ${reason}`);
  }
}

/** A size for people: 17179869184 → "16 GiB", 16e9 → "16 GB". */
export function formatSize(bytes: number): string {
  // Zero divides by every unit: it is plain bytes, not '0 PiB'.
  if (bytes === 0) return '0 B';
  const binary = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  const decimal = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  for (let power = 5; power > 0; power--) {
    if (bytes % 2 ** (10 * power) === 0) return `${bytes / 2 ** (10 * power)} ${binary[power]}`;
    if (bytes >= 10 ** (3 * power)) return `${+(bytes / 10 ** (3 * power)).toFixed(2)} ${decimal[power]}`;
  }
  return `${bytes} B`;
}

/** Bytes as GiB with at most one decimal: 17.0, 40, 0.5. */
export function formatGib(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return Number.isInteger(gib) ? String(gib) : gib.toFixed(1);
}

/** 42s, 3m04s, 1h02m, 2d03h: short enough for a table cell or a tree item's description. */
export function formatElapsed(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${pad(seconds % 60)}s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h${pad(Math.floor((seconds % 3600) / 60))}m`;
  return `${Math.floor(seconds / 86_400)}d${pad(Math.floor((seconds % 86_400) / 3600))}h`;
}

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

/** A metric value for people: 4 significant digits, exponent form for tiny or huge ones. */
export function formatMetricValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3)) return value.toExponential(2);
  return String(+value.toPrecision(4));
}
