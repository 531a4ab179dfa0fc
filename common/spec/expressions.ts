import { detachedCopy, type SourceRange } from './text';

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

const PATH = /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/;

/** The expressions in `text` between `start` and `end` (a scalar's source), in document offsets. */
export function findExpressions(text: string, start = 0, end = text.length): Expression[] {
  const found: Expression[] = [];
  for (let open = text.indexOf('${{', start); open >= 0 && open < end; ) {
    const close = text.indexOf('}}', open + 3);
    // An unclosed one is reported by the validator, which looks at the whole text.
    if (close < 0 || close + 2 > end) break;
    // The text between the braces without its surrounding blanks, cut out once.
    let pathStart = open + 3;
    let pathEnd = close;
    while (pathStart < pathEnd && isBlank(text.charCodeAt(pathStart))) pathStart++;
    while (pathEnd > pathStart && isBlank(text.charCodeAt(pathEnd - 1))) pathEnd--;
    const trimmed = text.slice(pathStart, pathEnd);
    found.push({
      // An editor's incremental analysis keeps a job's model across versions.
      source: detachedCopy(trimmed),
      path: PATH.test(trimmed) ? trimmed.split('.') : undefined,
      range: { start: open, end: close + 2 },
      pathRange: { start: pathStart, end: pathEnd },
    });
    open = text.indexOf('${{', close + 2);
  }
  return found;
}

/** What `trim` takes off (the blanks and line breaks an expression may have around its path). */
function isBlank(char: number): boolean {
  return char === 32 || char === 9 || char === 10 || char === 13 || char === 11 || char === 12 || char === 0xa0 || char === 0xfeff || char === 0x2028 || char === 0x2029 || (char >= 0x2000 && char <= 0x200a) || char === 0x1680 || char === 0x202f || char === 0x205f || char === 0x3000;
}

/** Replaces each expression whose path `resolve` knows; leaves the others for a later stage. */
export function substituteExpressions(template: string, resolve: (path: string[]) => string | undefined): string {
  // What /\$\{\{\s*([^}]*?)\s*\}\}/g finds, scanned by hand: a replace with a callback costs more
  // than the rest of planning a run, and a workflow plans thousands.
  let written = '';
  let copied = 0;
  for (let open = template.indexOf('${{'); open >= 0; ) {
    const brace = template.indexOf('}', open + 3);
    if (brace < 0) break;
    // No `}` inside: one alone ends no expression here; look for the next `${{` after this one.
    if (template.charCodeAt(brace + 1) !== 125) {
      open = template.indexOf('${{', open + 1);
      continue;
    }
    const inner = template.slice(open + 3, brace).trim();
    const value = PATH.test(inner) ? resolve(inner.split('.')) : undefined;
    if (value !== undefined) {
      written += template.slice(copied, open) + value;
      copied = brace + 2;
    }
    open = template.indexOf('${{', brace + 2);
  }
  return copied === 0 ? template : written + template.slice(copied);
}
