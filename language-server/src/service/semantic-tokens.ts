import type { SemanticTokensLegend } from 'vscode-languageserver';
import { allExpressions, segmentRanges } from './navigation';
import type { SpecDocument } from './spec-document';

/** The token types `semanticTokens` uses, by index. */
export const SEMANTIC_TOKEN_LEGEND: SemanticTokensLegend = { tokenTypes: ['macro', 'namespace', 'variable', 'property'], tokenModifiers: [] };

const MACRO = 0;
const NAMESPACE = 1;
const VARIABLE = 2;
const PROPERTY = 3;

/**
 * Semantic tokens for every `${{ }}` in the spec's values, in LSP's relative encoding: the
 * braces as `macro`, `params`/`jobs` as `namespace`, the param or job name as `variable`, and
 * `outputs` and the output's name as `property`.
 */
export function semanticTokens(document: SpecDocument): number[] {
  const tokens: { start: number; length: number; type: number }[] = [];
  for (const expression of allExpressions(document)) {
    const { range, path } = expression;
    tokens.push({ start: range.start, length: 3, type: MACRO });
    if (path && (path[0] === 'params' || path[0] === 'jobs')) {
      segmentRanges(expression).forEach((segment, index) => {
        const type = index === 0 ? NAMESPACE : index === 1 ? VARIABLE : PROPERTY;
        tokens.push({ start: segment.start, length: segment.end - segment.start, type });
      });
    }
    tokens.push({ start: range.end - 2, length: 2, type: MACRO });
  }
  tokens.sort((a, b) => a.start - b.start);
  const data: number[] = [];
  let line = 0;
  let character = 0;
  for (const token of tokens) {
    const position = document.positionAt(token.start);
    const deltaLine = position.line - line;
    data.push(deltaLine, deltaLine === 0 ? position.character - character : position.character, token.length, token.type, 0);
    line = position.line;
    character = position.character;
  }
  return data;
}
