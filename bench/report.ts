/** What the benchmarks share: correctness checks, percentiles and the tables they print. */

/** A benchmark's correctness check failed: its numbers would mean nothing. */
export class BenchAssertion extends Error {}

/** Runs a synchronous benchmark; a failed check exits 1 with its message, anything else is thrown on. */
export function runSync(main: () => void): void {
  try {
    main();
  } catch (error) {
    if (error instanceof BenchAssertion) {
      console.error(`\nbench assertion failed: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
}

export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new BenchAssertion(message);
}

export interface Latency {
  p50: number;
  p99: number;
  n: number;
}

/** Nearest-rank percentiles. */
export function latency(samples: number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (p: number): number => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
  return { p50: rank(0.5), p99: rank(0.99), n: sorted.length };
}

/** Milliseconds with as many decimals as they deserve. */
export const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2));

export const verdict = (met: boolean): string => (met ? 'MET' : 'MISS');

/** A table with the first column left-aligned and the others right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A transient status line, on terminals only (piped output stays clean). */
export function progress(message: string): void {
  if (process.stdout.isTTY) process.stdout.write(`\r${message.padEnd(70)}\r`);
}
