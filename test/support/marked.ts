/**
 * Fixture text with markers: `⟪…⟫` marks a range a diagnostic must cover exactly, `‸` marks a
 * cursor position. The markers are removed from the text the test gets.
 */
export interface Marked {
  text: string;
  ranges: { start: number; end: number }[];
  cursors: number[];
}

export function marked(source: string): Marked {
  const result: Marked = { text: '', ranges: [], cursors: [] };
  const open: number[] = [];
  for (const char of source) {
    if (char === '⟪') open.push(result.text.length);
    else if (char === '⟫') {
      const start = open.pop();
      if (start === undefined) throw new Error('fixture: ⟫ without ⟪');
      result.ranges.push({ start, end: result.text.length });
    } else if (char === '‸') result.cursors.push(result.text.length);
    else result.text += char;
  }
  if (open.length) throw new Error('fixture: ⟪ without ⟫');
  result.ranges.sort((a, b) => a.start - b.start);
  return result;
}

/** Joins lines, so fixtures can be written as arrays without indentation trouble. */
export function lines(...text: string[]): string {
  return `${text.join('\n')}\n`;
}
