import type { Position, Range } from 'vscode-languageserver';
import { analyzeSpec, type IncrementalAnalyzer, type MapEntry, type SourceRange, type SpecAnalysis, type SpecNode } from '../../../common/spec';

/** One open spec: its text, version and analysis (computed once per version). */
export class SpecDocument {
  readonly analysis: SpecAnalysis;

  /** `analyzer` reuses the work on the previous version (the server keeps one per open document). */
  constructor(
    readonly uri: string,
    readonly version: number,
    readonly text: string,
    analyzer?: IncrementalAnalyzer,
  ) {
    this.analysis = analyzer ? analyzer.analyze(text) : analyzeSpec(text, fileNameOf(uri));
  }

  offsetAt(position: Position): number {
    return this.analysis.lines.offset(position);
  }

  positionAt(offset: number): Position {
    return this.analysis.lines.position(offset);
  }

  rangeOf(range: SourceRange): Range {
    return { start: this.positionAt(range.start), end: this.positionAt(range.end) };
  }

  /**
   * The chain of nodes from the root down to the innermost node whose range holds `offset`,
   * each with the mapping entry it is the value of (if any). The last step says where the
   * cursor is; the keys along the way are its path (`jobs`, `train`, `resources`…).
   */
  pathAt(offset: number): PathStep[] {
    const steps: PathStep[] = [];
    let node: SpecNode | null = this.analysis.source.root;
    let entry: MapEntry | undefined;
    while (node) {
      steps.push({ node, ...(entry && { entry }) });
      let next: SpecNode | null = null;
      entry = undefined;
      if (node.kind === 'map') {
        for (const candidate of node.entries) {
          if (within(offset, candidate.keyRange) || within(offset, candidate.value.range)) {
            next = candidate.value;
            entry = candidate;
            break;
          }
        }
      } else if (node.kind === 'seq') {
        next = node.items.find((item) => within(offset, item.range)) ?? null;
      }
      node = next;
    }
    return steps;
  }
}

export interface PathStep {
  node: SpecNode;
  /** The mapping entry whose value `node` is (absent for the root and for list items). */
  entry?: MapEntry;
}

/** Whether an offset lies in a range, its end included (a cursor right after a word is on it). */
export function within(offset: number, range: SourceRange): boolean {
  return offset >= range.start && offset <= range.end;
}

export function fileNameOf(uri: string): string {
  try {
    return decodeURIComponent(new URL(uri).pathname);
  } catch {
    return uri;
  }
}
