import type { Database, SQLiteValue } from 'node-sqlite3-wasm';
import type { GpuInfo, GpuSampleSeries, GpuSamplesParams } from '../../../common/protocol';

type Row = Record<string, SQLiteValue>;

/** What a probe saw of one GPU that is worth keeping over time. */
export type GpuSample = Pick<GpuInfo, 'index' | 'utilizationPercent' | 'memoryUsedBytes'>;

/**
 * GPU utilization over time (the GPU timeline): a row per GPU per host probe, written inside the
 * probe's own transaction, so a sample is on disk once the probe's host state is. Bounded: each
 * GPU's samples older than the retention are dropped as it is sampled again, and `prune` drops
 * everyone's (at start, for GPUs no longer probed), so the table holds at most the retention's
 * worth of probes per GPU.
 */
export class GpuSamples {
  constructor(private readonly db: Database) {}

  /**
   * Records the GPUs a probe of `host` saw at `at`, and forgets their samples from before
   * `keepSince`. The same probe saved again (a host's state changing) is recorded once.
   */
  record(host: string, at: number, gpus: readonly GpuSample[], keepSince: number): void {
    for (const gpu of gpus) {
      this.db.run('INSERT OR IGNORE INTO gpu_samples (host, idx, at, utilization, memory_used_bytes) VALUES (?, ?, ?, ?, ?)', [host, gpu.index, at, gpu.utilizationPercent, gpu.memoryUsedBytes]);
      this.db.run('DELETE FROM gpu_samples WHERE host = ? AND idx = ? AND at < ?', [host, gpu.index, keepSince]);
    }
  }

  /** Forgets every GPU's samples from before `keepSince`; how many went. GPU by GPU, so only what goes is read. */
  prune(keepSince: number): number {
    let pruned = 0;
    for (const { host, gpu } of this.sampledGpus(undefined)) pruned += this.db.run('DELETE FROM gpu_samples WHERE host = ? AND idx = ? AND at < ?', [host, gpu, keepSince]).changes;
    return pruned;
  }

  /** Forgets a host's samples (it left the pool). */
  forgetHost(host: string): void {
    this.db.run('DELETE FROM gpu_samples WHERE host = ?', [host]);
  }

  /**
   * Each GPU's samples in [from, to], oldest first. With `maxPoints` and more samples than that,
   * the range is cut into `maxPoints` equal spans and each span with samples gives one point: the
   * mean of its utilization and memory (the mean, not the peak, so that a busy minute in an idle
   * hour reads as what it was), at the mean of its times.
   */
  read(params: GpuSamplesParams = {}): GpuSampleSeries[] {
    const from = params.from ?? Number.MIN_SAFE_INTEGER;
    const to = params.to ?? Number.MAX_SAFE_INTEGER;
    const series: GpuSampleSeries[] = [];
    for (const { host, gpu } of this.sampledGpus(params.hosts)) {
      const bounds = this.db.get('SELECT count(*) AS total, min(at) AS first, max(at) AS last FROM gpu_samples WHERE host = ? AND idx = ? AND at BETWEEN ? AND ?', [host, gpu, from, to]) as Row;
      const total = Number(bounds['total']);
      if (total === 0) continue;
      const entry: GpuSampleSeries = { host, gpu, at: [], utilization: [], memoryUsedBytes: [], samples: [], total };
      let rows: Row[];
      if (params.maxPoints === undefined || total <= params.maxPoints) {
        rows = this.db.all('SELECT at, utilization, memory_used_bytes AS memory, 1 AS samples FROM gpu_samples WHERE host = ? AND idx = ? AND at BETWEEN ? AND ? ORDER BY at', [host, gpu, from, to]) as Row[];
      } else {
        // Spans over the asked range (shared by every GPU), or this GPU's own samples when open-ended.
        const start = params.from ?? Number(bounds['first']);
        const span = (params.to ?? Number(bounds['last'])) - start + 1;
        rows = this.db.all(
          `SELECT CAST((at - ?) * ? / ? AS INTEGER) AS bucket, avg(at) AS at, avg(utilization) AS utilization, avg(memory_used_bytes) AS memory, count(*) AS samples
           FROM gpu_samples WHERE host = ? AND idx = ? AND at BETWEEN ? AND ? GROUP BY bucket ORDER BY bucket`,
          [start, params.maxPoints, span, host, gpu, from, to],
        ) as Row[];
      }
      for (const row of rows) {
        entry.at.push(Math.round(Number(row['at'])));
        entry.utilization.push(row['utilization'] === null ? null : Math.round(Number(row['utilization']) * 10) / 10);
        entry.memoryUsedBytes.push(Math.round(Number(row['memory'])));
        entry.samples.push(Number(row['samples']));
      }
      series.push(entry);
    }
    return series;
  }

  /** The GPUs that have samples, by host then index: one index seek each, never a scan of the samples. */
  private sampledGpus(only: readonly string[] | undefined): { host: string; gpu: number }[] {
    const hosts = only ? [...new Set(only)].sort() : [];
    if (!only) {
      for (let row = this.db.get('SELECT host FROM gpu_samples ORDER BY host LIMIT 1') as Row | null; row; row = this.db.get('SELECT host FROM gpu_samples WHERE host > ? ORDER BY host LIMIT 1', [row['host']!]) as Row | null) {
        hosts.push(String(row['host']));
      }
    }
    const gpus: { host: string; gpu: number }[] = [];
    for (const host of hosts) {
      for (let gpu = -1; ; ) {
        const row = this.db.get('SELECT idx FROM gpu_samples WHERE host = ? AND idx > ? ORDER BY idx LIMIT 1', [host, gpu]) as Row | null;
        if (!row) break;
        gpu = Number(row['idx']);
        gpus.push({ host, gpu });
      }
    }
    return gpus;
  }
}
