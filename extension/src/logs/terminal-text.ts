/**
 * Turns a run's raw output into what a terminal expects: a lone `\n` becomes `\r\n` (a pseudo-
 * terminal has no line discipline to do it), while `\r` (progress bars redrawing a line) and ANSI
 * escapes pass through untouched. It remembers how the last chunk ended, so a `\r\n` split across
 * two chunks is not doubled and a status line can start on a fresh line.
 */
export class TerminalText {
  private last = '\n';

  render(data: string): string {
    if (data === '') return '';
    let out = '';
    let start = 0;
    for (let index = data.indexOf('\n'); index !== -1; index = data.indexOf('\n', index + 1)) {
      const previous = index === 0 ? this.last : data[index - 1];
      if (previous !== '\r') {
        out += `${data.slice(start, index)}\r\n`;
        start = index + 1;
      }
    }
    out += data.slice(start);
    this.last = data.at(-1)!;
    return out;
  }

  /** A line of our own (a separator, the outcome), on a line of its own. */
  line(text: string): string {
    const prefix = this.last === '\n' ? '' : '\r\n';
    this.last = '\n';
    return `${prefix}${text}\r\n`;
  }
}
