import { isDeepStrictEqual } from 'node:util';
import type { FormattingOptions, TextEdit } from 'vscode-languageserver';
import { parseDocument, visit, type YAMLMap, type YAMLSeq } from 'yaml';
import type { SpecDocument } from './spec-document';

/**
 * Re-indents a spec with `options.tabSize` spaces (YAML allows no tabs), keeping its comments,
 * blank lines, quoting and the text of every scalar. One edit for the whole document, or none
 * when nothing changes or the text is not well-formed YAML (broken text is never touched).
 */
export function formatDocument(document: SpecDocument, options: FormattingOptions): TextEdit[] {
  const text = document.text;
  if (text.trim() === '') return [];
  const formatted = formatYaml(text, options);
  if (formatted === undefined || formatted === text) return [];
  return [{ range: { start: { line: 0, character: 0 }, end: document.positionAt(text.length) }, newText: formatted }];
}

/** The formatted text, or undefined when it cannot be formatted safely. */
export function formatYaml(text: string, options: FormattingOptions): string | undefined {
  try {
    // The failsafe schema reads every scalar as a string, so `1.0e-4` or `0x1F` is written back as it was.
    const document = parseDocument(text, { schema: 'failsafe', uniqueKeys: false });
    if (document.errors.length > 0) return undefined;
    keepFlowPadding(document, text);
    let formatted = document.toString({ indent: Math.min(Math.max(1, Math.floor(options.tabSize) || 2), 8), lineWidth: 0, minContentWidth: 0 });
    if (!text.endsWith('\n') && options.insertFinalNewline !== true) formatted = formatted.replace(/\n$/, '');
    if (text.includes('\r\n')) formatted = formatted.replace(/\r?\n/g, '\r\n');
    // A last check that the data is the same, whatever the YAML library did.
    const before = parseDocument(text, { uniqueKeys: false });
    const after = parseDocument(formatted, { uniqueKeys: false });
    if (after.errors.length > 0 || !isDeepStrictEqual(before.toJS(), after.toJS())) return undefined;
    return formatted;
  } catch {
    return undefined;
  }
}

/**
 * Writes each flow collection with the padding it had (`{ a: 1 }` and `[a, b]` side by side,
 * as Drover's examples do); the library has one setting for the whole document.
 */
function keepFlowPadding(document: ReturnType<typeof parseDocument>, text: string): void {
  const patch = (node: YAMLMap | YAMLSeq): void => {
    if (!node.flow || !node.range || node.items.length === 0) return;
    const padding = text[node.range[0] + 1] === ' ' ? ' ' : '';
    const original = node.toString.bind(node);
    node.toString = (ctx, onComment, onChompKeep) => original(ctx && { ...ctx, flowCollectionPadding: padding }, onComment, onChompKeep);
  };
  visit(document, { Map: (_, node) => patch(node), Seq: (_, node) => patch(node) });
}
