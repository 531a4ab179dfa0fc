import type { SourceRange } from './text';

/** One `${{ ... }}` in a spec string. */
export interface Expression {
  /** The text between the braces, trimmed, e.g. `params.lr`. */
  source: string;
  /** The dotted path, e.g. ['params', 'lr']; undefined when the text is not a plain path. */
  path: string[] | undefined;
  /** The whole `${{ ... }}`, in document offsets. */
  range: SourceRange;
  /** Just the path, in document offsets (what a rename edits). */
  pathRange: SourceRange;
}

export interface ExpressionScan {
  expressions: Expression[];
  /** Offsets of `${{` that are never closed. */
  unterminated: number[];
}

const PATH = /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/;

/** Finds expressions in a piece of source text that starts at document offset `base`. */
export function scanExpressions(source: string, base = 0): ExpressionScan {
  const scan: ExpressionScan = { expressions: [], unterminated: [] };
  let from = 0;
  for (;;) {
    const open = source.indexOf('${{', from);
    if (open < 0) return scan;
    const close = source.indexOf('}}', open + 3);
    if (close < 0) {
      scan.unterminated.push(base + open);
      return scan;
    }
    const inner = source.slice(open + 3, close);
    const trimmed = inner.trim();
    const leading = inner.length - inner.trimStart().length;
    const pathStart = base + open + 3 + leading;
    scan.expressions.push({
      source: trimmed,
      path: PATH.test(trimmed) ? trimmed.split('.') : undefined,
      range: { start: base + open, end: base + close + 2 },
      pathRange: { start: pathStart, end: pathStart + trimmed.length },
    });
    from = close + 2;
  }
}

/** Replaces each expression whose path `resolve` knows; leaves the others for a later stage. */
export function substituteExpressions(template: string, resolve: (path: string[]) => string | undefined): string {
  if (!template.includes('${{')) return template;
  return template.replace(/\$\{\{\s*([^}]*?)\s*\}\}/g, (whole, inner: string) => {
    if (!PATH.test(inner)) return whole;
    return resolve(inner.split('.')) ?? whole;
  });
}
