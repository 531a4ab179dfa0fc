import type { SourceRange } from './text';

export type Severity = 'error' | 'warning' | 'information';

/** What kind of problem a diagnostic reports; quick fixes and tests key on it. */
export type DiagnosticCode =
  | 'yaml-syntax'
  | 'not-a-mapping'
  | 'duplicate-key'
  | 'unknown-key'
  | 'missing-key'
  | 'wrong-type'
  | 'invalid-value'
  | 'nothing-to-run'
  | 'misplaced-key'
  | 'unknown-job'
  | 'dependency-cycle'
  | 'bad-expression'
  | 'unknown-reference'
  | 'sweep-size'
  | 'sweep-domain';

export interface RelatedLocation {
  message: string;
  range: SourceRange;
}

export interface SpecDiagnostic {
  severity: Severity;
  code: DiagnosticCode;
  message: string;
  range: SourceRange;
  /** A replacement for the text at `range` that would fix the problem ("did you mean"). */
  suggestion?: string;
  related?: RelatedLocation[];
}
