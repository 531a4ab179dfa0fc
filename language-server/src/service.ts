import { DiagnosticSeverity, type Diagnostic } from 'vscode-languageserver';
import { analyzeSpec, type SpecAnalysis, type SpecDiagnostic } from '../../common/spec';
import type { SpecDocument } from './service/spec-document';

/** Spec text → LSP diagnostics. Transport-free, so tests call it directly. */
export function doValidation(text: string, fileName: string): Diagnostic[] {
  const analysis = analyzeSpec(text, fileName);
  return analysis.diagnostics.map((diagnostic) => toLspDiagnostic(analysis, diagnostic));
}

/** The diagnostics of an open document, with related places (a cycle's edges) linked. */
export function diagnosticsOf(document: SpecDocument): Diagnostic[] {
  const { analysis } = document;
  return analysis.diagnostics.map((diagnostic) => {
    const lsp = toLspDiagnostic(analysis, diagnostic);
    if (diagnostic.related) {
      lsp.relatedInformation = diagnostic.related.map((related) => ({ message: related.message, location: { uri: document.uri, range: document.rangeOf(related.range) } }));
    }
    return lsp;
  });
}

const SEVERITY: Record<SpecDiagnostic['severity'], DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  information: DiagnosticSeverity.Information,
};

export function toLspDiagnostic(analysis: SpecAnalysis, diagnostic: SpecDiagnostic): Diagnostic {
  return {
    severity: SEVERITY[diagnostic.severity],
    code: diagnostic.code,
    source: 'drover',
    message: diagnostic.message,
    range: { start: analysis.lines.position(diagnostic.range.start), end: analysis.lines.position(diagnostic.range.end) },
    ...(diagnostic.suggestion !== undefined && { data: { suggestion: diagnostic.suggestion } }),
  };
}
