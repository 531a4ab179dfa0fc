import type { Database, SQLiteValue, Statement } from 'node-sqlite3-wasm';
import type { MetricAxis, MetricPointView, MetricsParams, MetricSummary } from '../../../common/protocol';

/**
 * A pre-aggregated copy of every metric series, so that a chart of a long run reads a few
 * thousand rows instead of every point.
 *
 * A series' points, in the order they were reported, are numbered from 0 (`seq`). Tier t cuts
 * the series into buckets of TIER_SIZES[t] points (bucket b holds seq b·size to b·size + size − 1;
 * each is 16 buckets of the tier below) and keeps per bucket: its count, its first and last row,
 * the range of its x on both axes, and four of its points: the first, the last, the lowest and
 * the highest (the earliest on ties). The last bucket of each tier fills as points arrive: the
 * tiers are updated in the transaction that adds the points, so they always cover every point.
 *
 * A read picks the coarsest tier with enough buckets in the range for the chart, takes those four
 * points from each bucket wholly inside the range and the points themselves from the buckets it
 * cuts (through the finer tiers), then thins those candidates with LTTB: every bucket's extremes
 * are among them, so the range's lowest and highest points survive, and its first and last where
 * x grows as points arrive (steps, times). A range with few points reads them all, straight from
 * the metrics table by row ranges.
 */
export const TIER_SIZES: readonly number[] = [64, 1024, 16_384];
const FAN_OUT = 16;
const TOP = TIER_SIZES.length - 1;
const CORNERS = ['first', 'last', 'low', 'high'] as const;
type Corner = (typeof CORNERS)[number];
const CORNER_COLUMNS = CORNERS.flatMap((corner) => [`${corner}_seq`, `${corner}_step`, `${corner}_value`, `${corner}_at`]);
const COLUMNS = ['job_id', 'tier', 'name', 'bucket', 'count', 'first_rowid', 'last_rowid', 'min_x', 'max_x', 'min_at', 'max_at', ...CORNER_COLUMNS];
/** The bucket columns holding a bucket's lowest and highest x on each axis (x on the step axis is the step, or seq for a point without one). */
const X_COLUMNS: Record<MetricAxis, [string, string]> = { step: ['min_x', 'max_x'], time: ['min_at', 'max_at'] };

/** Adds a batch's share of a bucket to its row: the first of its points stay, the rest merge. */
const UPSERT = `INSERT INTO metric_tiers (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})
  ON CONFLICT (job_id, tier, name, bucket) DO UPDATE SET
    count = count + excluded.count, last_rowid = excluded.last_rowid,
    min_x = min(min_x, excluded.min_x), max_x = max(max_x, excluded.max_x), min_at = min(min_at, excluded.min_at), max_at = max(max_at, excluded.max_at),
    ${['seq', 'step', 'value', 'at'].map((column) => `last_${column} = excluded.last_${column}`).join(', ')},
    ${['seq', 'step', 'value', 'at'].map((column) => `low_${column} = CASE WHEN excluded.low_value < low_value THEN excluded.low_${column} ELSE low_${column} END`).join(', ')},
    ${['seq', 'step', 'value', 'at'].map((column) => `high_${column} = CASE WHEN excluded.high_value > high_value THEN excluded.high_${column} ELSE high_${column} END`).join(', ')}`;

/**
 * The migration that adds the tiers: the table, then the tiers of the points already stored,
 * built as new points build them (the points read in each series' order, a chunk at a time).
 */
export function addMetricTiers(db: Database): void {
  db.exec(`
    CREATE TABLE metric_tiers (
      job_id INTEGER NOT NULL,
      tier INTEGER NOT NULL,
      name TEXT NOT NULL,
      bucket INTEGER NOT NULL,
      count INTEGER NOT NULL,
      first_rowid INTEGER NOT NULL,
      last_rowid INTEGER NOT NULL,
      min_x REAL NOT NULL,
      max_x REAL NOT NULL,
      min_at INTEGER NOT NULL,
      max_at INTEGER NOT NULL,
      ${CORNERS.map((corner) => `${corner}_seq INTEGER NOT NULL, ${corner}_step INTEGER, ${corner}_value REAL NOT NULL, ${corner}_at INTEGER NOT NULL`).join(',\n      ')},
      PRIMARY KEY (job_id, tier, name, bucket)
    ) WITHOUT ROWID;
  `);
  const tiers = new MetricTiers(db);
  const read = db.prepare('SELECT rowid, job_id, name, step, value, at FROM metrics INDEXED BY metrics_by_job ORDER BY job_id, name, rowid');
  try {
    let points: { jobId: number; name: string; step: number | null; value: number; at: number }[] = [];
    let rowids: number[] = [];
    for (const row of read.iterate() as Iterable<Row>) {
      points.push({ jobId: Number(row['job_id']), name: String(row['name']), step: row['step'] === null ? null : Number(row['step']), value: Number(row['value']), at: Number(row['at']) });
      rowids.push(Number(row['rowid']));
      if (points.length === 10_000) {
        tiers.add(points, rowids);
        points = [];
        rowids = [];
      }
    }
    tiers.add(points, rowids);
  } finally {
    read.finalize();
    tiers.close();
  }
}

/** A stored point with its place in its series. */
export interface SeriesPoint extends MetricPointView {
  seq: number;
}

/** Points of one series within a range, for a chart of at most `maxPoints`. */
export interface SeriesWindow {
  /** In the order they were reported. */
  points: SeriesPoint[];
  /** Points stored in the range. */
  total: number;
  /** True when `points` is every point in the range; else a sample that holds each bucket's first, last, lowest and highest. */
  every: boolean;
}

/** A bucket as stored (its x on the step axis: the step, or seq for a point without one). */
interface Bucket {
  bucket: number;
  count: number;
  firstRowid: number;
  lastRowid: number;
  minX: number;
  maxX: number;
  minAt: number;
  maxAt: number;
  corners: Record<Corner, SeriesPoint>;
}

/** A bucket as read, with its lowest and highest x on the axis read. */
interface FoundBucket extends Pick<Bucket, 'bucket' | 'count' | 'firstRowid' | 'lastRowid' | 'corners'> {
  lo: number;
  hi: number;
}

type Row = Record<string, SQLiteValue>;

/** The x of a point on an axis: its time, or its step (its place in the series when it gave none). */
export function xOf(point: SeriesPoint, axis: MetricAxis): number {
  return axis === 'time' ? point.at : (point.step ?? point.seq);
}

/** The tiers of one store's metrics, read and written inside its transactions (it keeps no state of its own). */
export class MetricTiers {
  /** Prepared once (preparing costs more than running): by SQL text. */
  private readonly statements = new Map<string, Statement>();
  /**
   * Points per series (by job and name) as of the last commit or later, so a batch need not ask;
   * forgotten when a transaction rolls back (`forget`), and read again.
   */
  private readonly counts = new Map<string, number>();

  constructor(private readonly db: Database) {}

  /** Finalizes the prepared statements (before the database closes). */
  close(): void {
    for (const statement of this.statements.values()) statement.finalize();
    this.statements.clear();
  }

  private prepare(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) this.statements.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }

  /** Adds points just inserted into the metrics table (with their rowids, in the order inserted) to every tier. */
  add(points: readonly { jobId: number; name: string; step: number | null; value: number; at: number }[], rowids: readonly number[]): void {
    if (points.length === 0) return;
    const bySeries = new Map<string, number[]>();
    for (let index = 0; index < points.length; index++) {
      const key = `${points[index]!.jobId}\u0000${points[index]!.name}`;
      let indices = bySeries.get(key);
      if (!indices) bySeries.set(key, (indices = []));
      indices.push(index);
    }
    const upsert = this.prepare(UPSERT);
    if (this.counts.size > 100_000) this.counts.clear();
    for (const [key, indices] of bySeries) {
      const { jobId, name } = points[indices[0]!]!;
      let seq = this.counts.get(key) ?? this.count(jobId, name);
      const open: (Bucket | undefined)[] = TIER_SIZES.map(() => undefined);
      for (const index of indices) {
        const { step, value, at } = points[index]!;
        const point: SeriesPoint = { seq, step, value, at };
        for (let tier = 0; tier <= TOP; tier++) {
          const bucket = Math.floor(seq / TIER_SIZES[tier]!);
          let current = open[tier];
          if (current && current.bucket !== bucket) {
            write(upsert, jobId, name, tier, current);
            current = undefined;
          }
          if (!current) open[tier] = startBucket(bucket, rowids[index]!, point);
          else extendBucket(current, rowids[index]!, point);
        }
        seq++;
      }
      open.forEach((bucket, tier) => write(upsert, jobId, name, tier, bucket!));
      this.counts.set(key, seq);
    }
  }

  /** How many points a series holds. */
  count(jobId: number, name: string): number {
    // `all`, not `get`: a cached statement must run to its end, or it holds the database open for reading.
    const [row] = this.prepare('SELECT bucket, count FROM metric_tiers WHERE job_id = ? AND tier = ? AND name = ? ORDER BY bucket DESC LIMIT 1').all([jobId, TOP, name]) as Row[];
    return row ? Number(row['bucket']) * TIER_SIZES[TOP]! + Number(row['count']) : 0;
  }

  /** A run's metrics in the order they first reported (the first is its key metric); only `names` when given. */
  names(jobId: number, names?: readonly string[]): string[] {
    const only = names?.length ? ` AND name IN (${names.map(() => '?').join(', ')})` : '';
    const rows = this.db.all(`SELECT name FROM metric_tiers WHERE job_id = ? AND tier = ? AND bucket = 0${only} ORDER BY first_rowid`, [jobId, TOP, ...(names ?? [])]) as Row[];
    return rows.map((row) => String(row['name']));
  }

  /**
   * Each metric's count, last, lowest and highest value for these runs (by run, then in the order
   * the metrics first reported), from the coarsest tier: a row or two per series, no points read.
   */
  summaries(jobIds: readonly number[]): MetricSummary[] {
    const summaries: MetricSummary[] = [];
    // Bound parameters per statement are limited: a few hundred runs at a time.
    for (let from = 0; from < jobIds.length; from += 500) {
      const chunk = jobIds.slice(from, from + 500);
      const rows = this.db.all(
        `SELECT job_id, name, count, last_value, low_value, high_value FROM metric_tiers
         WHERE job_id IN (${chunk.map(() => '?').join(', ')}) AND tier = ? ORDER BY job_id, first_rowid`,
        [...chunk, TOP],
      ) as Row[];
      // A series' buckets follow one another by first_rowid; they are merged into its summary.
      const byKey = new Map<string, MetricSummary>();
      for (const row of rows) {
        const jobId = Number(row['job_id']);
        const name = String(row['name']);
        const key = `${jobId}\u0000${name}`;
        const low = Number(row['low_value']);
        const high = Number(row['high_value']);
        const summary = byKey.get(key);
        if (!summary) {
          const added: MetricSummary = { jobId, name, count: Number(row['count']), last: Number(row['last_value']), min: low, max: high };
          byKey.set(key, added);
          summaries.push(added);
        } else {
          summary.count += Number(row['count']);
          summary.last = Number(row['last_value']);
          summary.min = Math.min(summary.min, low);
          summary.max = Math.max(summary.max, high);
        }
      }
    }
    return summaries;
  }

  /** Forgets what it remembers of the database (after a rollback). */
  forget(): void {
    this.counts.clear();
  }

  /** Forgets a run's tiers (its points are being deleted). */
  delete(jobId: number): void {
    this.forget();
    this.db.run('DELETE FROM metric_tiers WHERE job_id = ?', [jobId]);
  }

  /**
   * A series' points within `range` for a chart of `maxPoints` (4 or more): every one when they
   * are few, else a sample of the finest detail the chart can use (see the module comment).
   */
  window(jobId: number, name: string, range: MetricsParams['range'], maxPoints: number): SeriesWindow {
    // A bucket gives up to four candidates: a quarter as many buckets as points fills the chart.
    const enough = Math.ceil(maxPoints / 4);
    let spans: [number, number][] = [[0, Number.MAX_SAFE_INTEGER]];
    for (let tier = TOP; ; tier--) {
      const buckets = this.buckets(jobId, name, tier, spans, range);
      if (buckets.length >= enough) {
        const sample: SeriesPoint[] = [];
        const total = this.sample(jobId, name, tier, buckets, range, sample);
        if (total > maxPoints) return { points: sample, total, every: false };
      }
      if (buckets.length >= enough || tier === 0) {
        const points = this.points(jobId, name, tier, buckets, range);
        return { points, total: points.length, every: true };
      }
      spans = childSpans(buckets);
    }
  }

  /** The buckets of a tier within `spans` (of bucket numbers) that hold points in `range`, in order. */
  private buckets(jobId: number, name: string, tier: number, spans: readonly [number, number][], range: MetricsParams['range']): FoundBucket[] {
    const [minColumn, maxColumn] = X_COLUMNS[range?.axis ?? 'step'];
    const overlaps = range ? ` AND ${maxColumn} >= ? AND ${minColumn} <= ?` : '';
    const statement = this.prepare(
      `SELECT bucket, count, first_rowid, last_rowid, ${minColumn} AS lo, ${maxColumn} AS hi, ${CORNER_COLUMNS.join(', ')}
       FROM metric_tiers WHERE job_id = ? AND tier = ? AND name = ? AND bucket BETWEEN ? AND ?${overlaps} ORDER BY bucket`,
    );
    const found: FoundBucket[] = [];
    for (const [from, to] of spans) {
      const rows = statement.all([jobId, tier, name, from, to, ...(range ? [range.min, range.max] : [])]) as Row[];
      for (const row of rows) found.push(bucketFromRow(row));
    }
    return found;
  }

  /**
   * Adds to `sample` the corners of each bucket inside `range` and, of each bucket the range cuts,
   * the sample of its sub-buckets (down to its points); returns the points in range they stand for.
   */
  private sample(jobId: number, name: string, tier: number, buckets: readonly FoundBucket[], range: MetricsParams['range'], sample: SeriesPoint[]): number {
    let total = 0;
    for (const bucket of buckets) {
      if (!range || (bucket.lo >= range.min && bucket.hi <= range.max)) {
        let previous = -1;
        for (const point of Object.values(bucket.corners).sort((a, b) => a.seq - b.seq)) {
          if (point.seq !== previous) sample.push(point);
          previous = point.seq;
        }
        total += bucket.count;
      } else if (tier === 0) {
        const points = this.points(jobId, name, 0, [bucket], range);
        sample.push(...points);
        total += points.length;
      } else {
        const children = this.buckets(jobId, name, tier - 1, childSpans([bucket]), range);
        total += this.sample(jobId, name, tier - 1, children, range, sample);
      }
    }
    return total;
  }

  /** Every point of these buckets (of one tier, in order) within `range`, read from the metrics table a run of adjacent buckets at a time. */
  private points(jobId: number, name: string, tier: number, buckets: readonly FoundBucket[], range: MetricsParams['range']): SeriesPoint[] {
    const size = TIER_SIZES[tier]!;
    const axis = range?.axis ?? 'step';
    const statement = this.prepare('SELECT step, value, at FROM metrics INDEXED BY metrics_by_job WHERE job_id = ? AND name = ? AND rowid BETWEEN ? AND ? ORDER BY rowid');
    const points: SeriesPoint[] = [];
    for (let start = 0; start < buckets.length; ) {
      let end = start;
      while (end + 1 < buckets.length && buckets[end + 1]!.bucket === buckets[end]!.bucket + 1) end++;
      let seq = buckets[start]!.bucket * size;
      for (const row of statement.all([jobId, name, buckets[start]!.firstRowid, buckets[end]!.lastRowid]) as Row[]) {
        const point: SeriesPoint = { seq: seq++, step: row['step'] === null ? null : Number(row['step']), value: Number(row['value']), at: Number(row['at']) };
        if (!range || (xOf(point, axis) >= range.min && xOf(point, axis) <= range.max)) points.push(point);
      }
      start = end + 1;
    }
    return points;
  }
}

/** The bucket numbers one tier down that make up these buckets, as runs of adjacent numbers. */
function childSpans(buckets: readonly FoundBucket[]): [number, number][] {
  const spans: [number, number][] = [];
  for (const { bucket } of buckets) {
    const last = spans.at(-1);
    if (last && last[1] + 1 === bucket * FAN_OUT) last[1] = bucket * FAN_OUT + FAN_OUT - 1;
    else spans.push([bucket * FAN_OUT, bucket * FAN_OUT + FAN_OUT - 1]);
  }
  return spans;
}

function startBucket(bucket: number, rowid: number, point: SeriesPoint): Bucket {
  const x = xOf(point, 'step');
  return { bucket, count: 1, firstRowid: rowid, lastRowid: rowid, minX: x, maxX: x, minAt: point.at, maxAt: point.at, corners: { first: point, last: point, low: point, high: point } };
}

function extendBucket(bucket: Bucket, rowid: number, point: SeriesPoint): void {
  const x = xOf(point, 'step');
  bucket.count++;
  bucket.lastRowid = rowid;
  bucket.minX = Math.min(bucket.minX, x);
  bucket.maxX = Math.max(bucket.maxX, x);
  bucket.minAt = Math.min(bucket.minAt, point.at);
  bucket.maxAt = Math.max(bucket.maxAt, point.at);
  bucket.corners.last = point;
  if (point.value < bucket.corners.low.value) bucket.corners.low = point;
  if (point.value > bucket.corners.high.value) bucket.corners.high = point;
}

/** Adds a bucket's points to its row (merging with the points it already holds). */
function write(upsert: Statement, jobId: number, name: string, tier: number, bucket: Bucket): void {
  const corners = CORNERS.flatMap((corner) => {
    const point = bucket.corners[corner];
    return [point.seq, point.step, point.value, point.at];
  });
  upsert.run([jobId, tier, name, bucket.bucket, bucket.count, bucket.firstRowid, bucket.lastRowid, bucket.minX, bucket.maxX, bucket.minAt, bucket.maxAt, ...corners]);
}

function bucketFromRow(row: Row): FoundBucket {
  const corner = (prefix: Corner): SeriesPoint => ({
    seq: Number(row[`${prefix}_seq`]),
    step: row[`${prefix}_step`] === null ? null : Number(row[`${prefix}_step`]),
    value: Number(row[`${prefix}_value`]),
    at: Number(row[`${prefix}_at`]),
  });
  return {
    bucket: Number(row['bucket']),
    count: Number(row['count']),
    firstRowid: Number(row['first_rowid']),
    lastRowid: Number(row['last_rowid']),
    lo: Number(row['lo']),
    hi: Number(row['hi']),
    corners: { first: corner('first'), last: corner('last'), low: corner('low'), high: corner('high') },
  };
}
