/** Where a command writes; tests pass their own. */
export interface CommandOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Exit codes that mean something to scripts. */
export const EXIT = {
  ok: 0,
  /** The input was read but is wrong (a spec with errors). */
  invalid: 1,
  /** The command line itself is wrong. */
  usage: 2,
  /** A file could not be read. */
  noInput: 3,
  /** The daemon is not running and could not be started, or went away. */
  unavailable: 4,
} as const;

/** A failure the user can act on: printed as one line, no stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.invalid,
  ) {
    super(message);
  }
}

/** Fixed-width columns for human tables. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** A count and its noun, plural unless one: '1 run', '5,000 runs'. */
export function plural(count: number, noun: string): string {
  return `${count.toLocaleString('en-US')} ${noun}${count === 1 ? '' : 's'}`;
}
