import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from 'node-sqlite3-wasm';
import type { MetricAxis, MetricsParams, MetricSummary } from '../../../common/protocol';
import { readMetrics } from '../../../runner/src/metrics/lttb';
import { TIER_SIZES } from '../../../runner/src/store/metric-tiers';
import { MIGRATIONS } from '../../../runner/src/store/migrations';
import { Store, type MetricRow } from '../../../runner/src/store/store';

const T = 1_700_000_000_000;

/** A stored point as the brute-force reference sees it: its rowid and its place in its series. */
interface Stored extends MetricRow {
  rowid: number;
  seq: number;
}

/** What a series' shape can be: steps in order, going back (a resumed run), or missing. */
type Shape = 'ascending' | 'resumed' | 'no steps';

function series(jobId: number, name: string, length: number, shape: Shape, seed: number): MetricRow[] {
  let state = seed;
  const random = () => ((state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  return Array.from({ length }, (_, index) => ({
    jobId,
    attempt: 1,
    name,
    step: shape === 'no steps' ? null : shape === 'resumed' && index > length / 2 ? index - Math.floor(length / 4) : index,
    // Coarse values, so that ties (the earliest wins) happen.
    value: Math.round(random() * 40) / 4 - 5,
    at: T + index * 10 + Math.floor(random() * 10),
  }));
}

/** Writes the series' points interleaved, in batches of random sizes, one transaction each; returns them as stored. */
function write(store: Store, all: MetricRow[][], batches: number[]): Stored[] {
  const queue = all.flatMap((points) => points.map((point, seq) => ({ point, seq })));
  // Interleave the series as a daemon does when runs report at once, keeping each series' order.
  queue.sort((a, b) => a.seq - b.seq);
  const stored: Stored[] = [];
  let rowid = 0;
  for (let from = 0, turn = 0; from < queue.length; turn++) {
    const batch = queue.slice(from, from + batches[turn % batches.length]!);
    store.transaction(() => store.addMetrics(batch.map(({ point }) => point)), { deferred: true });
    for (const { point, seq } of batch) stored.push({ ...point, rowid: ++rowid, seq });
    from += batch.length;
  }
  return stored;
}

const xOf = (point: Stored, axis: MetricAxis) => (axis === 'time' ? point.at : (point.step ?? point.seq));

/** The tier rows the points should give, computed from scratch. */
function expectedTiers(stored: Stored[]): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  const bySeries = new Map<string, Stored[]>();
  for (const point of stored) {
    const key = `${point.jobId}/${point.name}`;
    let points = bySeries.get(key);
    if (!points) bySeries.set(key, (points = []));
    points.push(point);
  }
  TIER_SIZES.forEach((size, tier) => {
    for (const points of bySeries.values()) {
      for (let start = 0; start < points.length; start += size) {
        const bucket = points.slice(start, start + size);
        const low = bucket.reduce((best, point) => (point.value < best.value ? point : best));
        const high = bucket.reduce((best, point) => (point.value > best.value ? point : best));
        const corner = (prefix: string, point: Stored) => ({ [`${prefix}_seq`]: point.seq, [`${prefix}_step`]: point.step, [`${prefix}_value`]: point.value, [`${prefix}_at`]: point.at });
        rows.push({
          job_id: bucket[0]!.jobId, tier, name: bucket[0]!.name, bucket: start / size, count: bucket.length,
          first_rowid: bucket[0]!.rowid, last_rowid: bucket.at(-1)!.rowid,
          min_x: Math.min(...bucket.map((point) => xOf(point, 'step'))), max_x: Math.max(...bucket.map((point) => xOf(point, 'step'))),
          min_at: Math.min(...bucket.map((point) => point.at)), max_at: Math.max(...bucket.map((point) => point.at)),
          ...corner('first', bucket[0]!), ...corner('last', bucket.at(-1)!), ...corner('low', low), ...corner('high', high),
        });
      }
    }
  });
  return sortRows(rows);
}

function sortRows(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  const key = (row: Record<string, unknown>) => `${String(row['job_id']).padStart(4)}/${row['name']}/${row['tier']}/${String(row['bucket']).padStart(8)}`;
  return rows.sort((a, b) => key(a).localeCompare(key(b)));
}

/** The tier rows in a closed state file. */
function storedTiers(file: string): Record<string, unknown>[] {
  const db = new Database(file);
  // A WAL file opened without shared memory (as the store opens it).
  db.exec('PRAGMA locking_mode = EXCLUSIVE');
  try {
    return sortRows(db.all('SELECT * FROM metric_tiers') as Record<string, unknown>[]);
  } finally {
    db.close();
  }
}

/** Checks one read against the points in range, counted and listed from scratch. */
function checkRead(store: Store, stored: Stored[], jobId: number, name: string, options: Omit<MetricsParams, 'id'>): void {
  const axis = options.range?.axis ?? 'step';
  const inRange = stored.filter((point) => point.jobId === jobId && point.name === name && (!options.range || (xOf(point, axis) >= options.range.min && xOf(point, axis) <= options.range.max)));
  const [answer] = readMetrics(store, jobId, { ...options, names: [name] });
  if (inRange.length === 0 && !answer) return;
  const what = `${jobId}/${name} ${JSON.stringify(options)}`;
  assert.ok(answer, `${what}: no series`);
  assert.equal(answer.total, inRange.length, `${what}: counted`);
  const view = (point: { step: number | null; value: number; at: number }) => `${point.step}/${point.value}/${point.at}`;
  if (options.maxPoints === undefined || inRange.length <= options.maxPoints) {
    // Few enough: every point in range, as stored, in the order reported.
    assert.deepEqual(answer.points.map(view), inRange.map(view), `${what}: every point`);
    return;
  }
  assert.ok(answer.points.length <= options.maxPoints, `${what}: ${answer.points.length} points`);
  const known = new Set(inRange.map(view));
  for (const point of answer.points) assert.ok(known.has(view(point)), `${what}: ${view(point)} is a stored point in range`);
  const values = answer.points.map((point) => point.value);
  assert.equal(Math.min(...values), Math.min(...inRange.map((point) => point.value)), `${what}: the lowest kept`);
  assert.equal(Math.max(...values), Math.max(...inRange.map((point) => point.value)), `${what}: the highest kept`);
  const xs = answer.points.map((point) => (axis === 'time' ? point.at : point.step));
  assert.ok(xs.every((x, index) => index === 0 || x! >= xs[index - 1]!), `${what}: in x order`);
}

describe('metric tiers', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-tiers-'));
    file = join(dir, 'state.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps each bucket of each tier exact as points arrive in batches, and the migration builds the same from stored points', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ length: fc.integer({ min: 1, max: 40_000 }), shape: fc.constantFrom<Shape>('ascending', 'resumed', 'no steps') }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 1e6 }),
        (shapes, batches, seed) => {
          rmSync(file, { force: true });
          const store = Store.open(file);
          const stored = write(store, shapes.map((shape, index) => series(1 + (index % 2), `m${index}`, shape.length, shape.shape, seed + index)), batches);
          store.close();
          const expected = expectedTiers(stored);
          assert.deepEqual(storedTiers(file), expected);
          // As if written by a Drover from before the tiers: the migration rebuilds them.
          const db = new Database(file);
          db.exec(`PRAGMA locking_mode = EXCLUSIVE; DROP TABLE metric_tiers; PRAGMA user_version = ${MIGRATIONS.length - 1}`);
          db.close();
          Store.open(file).close();
          assert.deepEqual(storedTiers(file), expected);
        },
      ),
      { numRuns: 8 },
    );
  }).timeout(120_000);

  it('answers reads as the brute-force reference: counts exact, ranges respected, extremes kept, every point when few', () => {
    const store = Store.open(file);
    try {
      const shapes: Shape[] = ['ascending', 'resumed', 'no steps'];
      const lengths = [70_000, 12_345, 5_000];
      const stored = write(store, shapes.map((shape, index) => series(7, shape, lengths[index]!, shape, 99 + index)), [1000, 17, 3]);
      fc.assert(
        fc.property(
          fc.constantFrom(...shapes),
          fc.option(fc.record({ axis: fc.constantFrom<MetricAxis>('step', 'time'), from: fc.double({ min: -0.1, max: 1, noNaN: true }), width: fc.double({ min: 0, max: 1.2, noNaN: true }) })),
          fc.option(fc.integer({ min: 4, max: 5000 })),
          (name, cut, maxPoints) => {
            const length = lengths[shapes.indexOf(name)]!;
            const span = cut?.axis === 'time' ? length * 10 : length;
            const base = cut?.axis === 'time' ? T : 0;
            const range = cut ? { axis: cut.axis, min: Math.floor(base + cut.from * span), max: Math.floor(base + (cut.from + cut.width) * span) } : undefined;
            checkRead(store, stored, 7, name, { ...(range && { range }), ...(maxPoints !== null && { maxPoints }) });
          },
        ),
        { numRuns: 150 },
      );
      // Ranges that end just inside and just outside the buckets' edges, on every tier.
      for (const size of TIER_SIZES) {
        for (const [min, max] of [[size - 1, 3 * size], [size, 3 * size - 1], [size + 1, 3 * size - 2]] as const) {
          for (const maxPoints of [4, 40, 2000]) checkRead(store, stored, 7, 'ascending', { range: { axis: 'step', min, max }, maxPoints });
        }
      }
      // The reads a dashboard makes: the whole run, then zoomed in on 1%.
      checkRead(store, stored, 7, 'ascending', { maxPoints: 2000 });
      checkRead(store, stored, 7, 'ascending', { range: { axis: 'step', min: 35_000, max: 35_699 }, maxPoints: 2000 });
      checkRead(store, stored, 7, 'ascending', { range: { axis: 'time', min: T + 350_000, max: T + 356_999 }, maxPoints: 250 });
      // The run's series, first reported first.
      assert.deepEqual(store.metricNames(7), shapes);
      assert.deepEqual(store.metricNames(7, ['no steps', 'ascending']), ['ascending', 'no steps']);
    } finally {
      store.close();
    }
  }).timeout(120_000);

  it('summarizes each run\'s metrics as the brute-force reference: count, last, lowest and highest, first reported first', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ jobId: fc.integer({ min: 1, max: 4 }), length: fc.integer({ min: 1, max: 40_000 }), shape: fc.constantFrom<Shape>('ascending', 'resumed', 'no steps') }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 1e6 }),
        (shapes, batches, seed) => {
          rmSync(file, { force: true });
          const store = Store.open(file);
          try {
            const stored = write(store, shapes.map((shape, index) => series(shape.jobId, `m${index}`, shape.length, shape.shape, seed + index)), batches);
            const expected: MetricSummary[] = [];
            for (const jobId of [1, 2, 3, 4]) {
              const points = stored.filter((point) => point.jobId === jobId).sort((a, b) => a.rowid - b.rowid);
              for (const name of new Set(points.map((point) => point.name))) {
                const values = points.filter((point) => point.name === name).map((point) => point.value);
                expected.push({ jobId, name, count: values.length, last: values.at(-1)!, min: Math.min(...values), max: Math.max(...values) });
              }
            }
            // Run 5 has no points; more runs than one statement binds are asked for at once.
            const ids = [5, ...Array.from({ length: 700 }, (_, index) => 1000 + index), 4, 3, 2, 1];
            assert.deepEqual(store.metricSummaries(ids), expected);
            assert.deepEqual(store.metricSummaries([2]), expected.filter((summary) => summary.jobId === 2));
            assert.deepEqual(store.metricSummaries([]), []);
          } finally {
            store.close();
          }
        },
      ),
      { numRuns: 10 },
    );
  }).timeout(120_000);

  it('keeps the first and last points of a range of a steady series (what the runs table shows last)', () => {
    const store = Store.open(file);
    try {
      write(store, [series(3, 'loss', 100_000, 'ascending', 5)], [4096]);
      const [whole] = readMetrics(store, 3, { maxPoints: 500 });
      assert.equal(whole!.points[0]!.step, 0);
      assert.equal(whole!.points.at(-1)!.step, 99_999);
      const [zoomed] = readMetrics(store, 3, { range: { axis: 'step', min: 1234, max: 56_789 }, maxPoints: 300 });
      assert.equal(zoomed!.total, 56_789 - 1234 + 1);
      assert.equal(zoomed!.points[0]!.step, 1234);
      assert.equal(zoomed!.points.at(-1)!.step, 56_789);
    } finally {
      store.close();
    }
  });

  it('forgets a deleted run\'s tiers with its points, and rolls them back with a failed transaction', () => {
    let store = Store.open(file);
    try {
      write(store, [series(4, 'loss', 3000, 'ascending', 1)], [500]);
      assert.throws(() => store.transaction(() => {
        store.addMetrics(series(4, 'loss', 100, 'ascending', 2));
        throw new Error('the commit fails');
      }));
      assert.equal(readMetrics(store, 4, { maxPoints: 100 })[0]!.total, 3000);
      // Points after the rollback go on from the 3,000th, in their buckets.
      const points = series(4, 'loss', 3100, 'ascending', 1);
      store.transaction(() => store.addMetrics(points.slice(3000)));
      store.close();
      assert.deepEqual(storedTiers(file), expectedTiers(points.map((point, seq) => ({ ...point, rowid: seq + 1, seq }))));
      store = Store.open(file);
      store.transaction(() => store.deleteJob(4));
      assert.deepEqual(readMetrics(store, 4, { maxPoints: 100 }), []);
      assert.deepEqual(store.metricNames(4), []);
    } finally {
      store.close();
    }
  });
});
