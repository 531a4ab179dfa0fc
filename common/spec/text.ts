/** A half-open span of a document, as character offsets: [start, end). */
export interface SourceRange {
  start: number;
  end: number;
}

/** A zero-based line and character, as LSP counts them. */
export interface TextPosition {
  line: number;
  character: number;
}

/** Maps offsets to lines and back for one text. The line table is built on first use. */
export class LineIndex {
  private table: number[] | undefined;

  constructor(readonly text: string) {}

  private get lineStarts(): number[] {
    if (!this.table) {
      this.table = [0];
      for (let i = this.text.indexOf('\n'); i >= 0; i = this.text.indexOf('\n', i + 1)) this.table.push(i + 1);
    }
    return this.table;
  }

  get lineCount(): number {
    return this.lineStarts.length;
  }

  /** Where line `line` (zero-based, below lineCount) starts. */
  lineStart(line: number): number {
    return this.lineStarts[line]!;
  }

  position(offset: number): TextPosition {
    const starts = this.lineStarts;
    const clamped = Math.max(0, Math.min(offset, this.text.length));
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (starts[middle]! <= clamped) low = middle;
      else high = middle - 1;
    }
    return { line: low, character: clamped - starts[low]! };
  }

  offset(position: TextPosition): number {
    const starts = this.lineStarts;
    if (position.line < 0) return 0;
    if (position.line >= starts.length) return this.text.length;
    const lineEnd = position.line + 1 < starts.length ? starts[position.line + 1]! - 1 : this.text.length;
    return Math.min(starts[position.line]! + Math.max(0, position.character), lineEnd);
  }
}

/**
 * A copy of a piece of a text that does not keep the whole text alive, as V8's slices of 13
 * characters or more do (they point into it): what a model kept across versions holds.
 */
export function detachedCopy(piece: string): string {
  // Shorter slices are copies already; a concatenation is copied into a new string when sliced.
  return piece.length < 13 ? piece : (' ' + piece).slice(1);
}
