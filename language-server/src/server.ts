import { setFlagsFromString } from 'v8';
import { createConnection, ProposedFeatures, ResponseError, TextDocuments, TextDocumentSyncKind } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { LEAN_OPTIMIZING_FLAGS } from '../../common/node/v8-budgets';
import { IncrementalAnalyzer } from '../../common/spec';
import { ClusterContext } from './cluster-context';
import { diagnosticsOf } from './service';
import { clusterDiagnostics } from './service/cluster';
import { CODE_ACTION_KINDS, codeActions } from './service/code-actions';
import { codeLenses } from './service/code-lenses';
import { doComplete } from './service/completion';
import { formatDocument } from './service/formatting';
import { doHover } from './service/hover';
import { doRename, findDefinition, findReferences, prepareRename } from './service/navigation';
import { describeSchemaKeys } from './service/schema-at';
import { SEMANTIC_TOKEN_LEGEND, semanticTokens } from './service/semantic-tokens';
import { fileNameOf, SpecDocument } from './service/spec-document';
import { documentSymbols, foldingRanges } from './service/symbols';

// Wiring only: the language logic lives in the transport-free service.
const connection = createConnection(ProposedFeatures.all);
const documents = new TextDocuments(TextDocument);

/**
 * After an edit, diagnostics wait for the typing to pause: as long as the document's last
 * analysis after an edit took (processor time), within these bounds. A burst of keystrokes (a held key, a paste of
 * many changes) is then analysed once, and a spec whose analysis is slow (a large one with a
 * syntax error, which is analysed whole) is not analysed at every keystroke; a quick one answers
 * almost at once.
 */
const DIAGNOSTICS_DELAY_MS = { min: 15, max: 150 };

/** The analysed spec for each open document, for its latest version only. */
const analysed = new Map<string, SpecDocument>();
/** Each open document's analyzer, which reuses the work on the jobs an edit did not touch. */
const analyzers = new Map<string, IncrementalAnalyzer>();
/** The processor time of each open document's last analysis after an edit, in ms (the first one, on opening, does all the work). */
const analysisMs = new Map<string, number>();
const pendingDiagnostics = new Map<string, NodeJS.Timeout>();

/** The live cluster, when a daemon answers; a change re-checks every open spec against it. */
const cluster = new ClusterContext(() => {
  for (const document of documents.all()) scheduleDiagnostics(document.uri, document.version);
});

function specOf(uri: string): SpecDocument | undefined {
  const open = documents.get(uri);
  if (!open) return undefined;
  const cached = analysed.get(uri);
  if (cached?.version === open.version) return cached;
  let analyzer = analyzers.get(uri);
  const edited = analyzer !== undefined;
  if (!analyzer) analyzers.set(uri, (analyzer = new IncrementalAnalyzer(fileNameOf(uri))));
  const text = open.getText();
  if (text.length >= LARGE_SPEC_CHARS) letYoungGenerationGrow();
  if (text.length >= OPTIMIZING_SPEC_CHARS) optimizeHotCode();
  // What the analysis costs, not how long it waited for a busy machine's processor.
  const started = process.cpuUsage();
  const document = new SpecDocument(uri, open.version, text, analyzer);
  const { user, system } = process.cpuUsage(started);
  const cpuMs = (user + system) / 1000;
  if (edited) analysisMs.set(uri, cpuMs);
  if (cpuMs >= OPTIMIZING_ANALYSIS_MS) optimizeHotCode();
  analysed.set(uri, document);
  return document;
}

/** From this size on (a workflow of about 6,500 jobs), a spec's analysis lets V8's young generation grow (see the end of this file). */
const LARGE_SPEC_CHARS = 1024 * 1024;

let youngGenerationGrows = false;

function letYoungGenerationGrow(): void {
  if (youngGenerationGrows) return;
  youngGenerationGrows = true;
  // V8's default.
  setFlagsFromString('--semi-space-growth-factor=2');
}

/**
 * From this size on (a workflow of about 1,700 jobs), or once an analysis has taken this much
 * processor time, V8's optimizing compiler is switched on (see the end of this file): the
 * analysis of such a spec runs often enough, and long enough, for optimized code to pay for itself.
 */
const OPTIMIZING_SPEC_CHARS = 256 * 1024;
const OPTIMIZING_ANALYSIS_MS = 50;

let optimizing = false;

function optimizeHotCode(): void {
  if (optimizing) return;
  optimizing = true;
  // The first analysis of a 2,000-job spec compiles the parser while it runs. With these budgets
  // its large functions compile in about half the time, and only the hottest are compiled: that
  // analysis then takes about 70 ms on its own thread and 130 ms of processor time in all, where
  // V8's defaults take 70 and 190 (and no optimizing 115 and 135); a 10,000-job spec's is as fast
  // as with the defaults.
  setFlagsFromString(`--turbofan ${LEAN_OPTIMIZING_FLAGS}`);
}

/** Runs a request against the analysed spec, or answers nothing for a document that is not open. */
function withSpec<T>(uri: string, answer: (spec: SpecDocument) => T): T | null {
  const spec = specOf(uri);
  return spec ? answer(spec) : null;
}

connection.onShutdown(() => cluster.dispose());

connection.onInitialize(() => {
  cluster.start();
  return {
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      completionProvider: { triggerCharacters: ['.', ' ', '[', ',', '-', ':', '"'] },
      hoverProvider: true,
      definitionProvider: true,
      referencesProvider: true,
      renameProvider: { prepareProvider: true },
      documentSymbolProvider: true,
      codeLensProvider: { resolveProvider: false },
      foldingRangeProvider: true,
      codeActionProvider: { codeActionKinds: CODE_ACTION_KINDS },
      documentFormattingProvider: true,
      semanticTokensProvider: { legend: SEMANTIC_TOKEN_LEGEND, full: true },
    },
    serverInfo: { name: 'drover-language-server' },
  };
});

/** Publishes diagnostics for `version` after `delayMs`, unless a newer version comes first. */
function scheduleDiagnostics(uri: string, version: number, delayMs = 0): void {
  clearTimeout(pendingDiagnostics.get(uri));
  pendingDiagnostics.set(
    uri,
    setTimeout(() => {
      pendingDiagnostics.delete(uri);
      const spec = specOf(uri);
      // A newer version is on its way (or the document closed): never publish for a stale one.
      if (!spec || spec.version !== version) return;
      const diagnostics = [...diagnosticsOf(spec), ...clusterDiagnostics(spec, cluster.hosts)];
      void connection.sendDiagnostics({ uri, version, diagnostics });
    }, delayMs),
  );
}

/** How long diagnostics wait after an edit; a document not analysed yet (just opened) waits for nothing. */
function typingDelay(uri: string): number {
  if (!analyzers.has(uri)) return 0;
  const { min, max } = DIAGNOSTICS_DELAY_MS;
  return Math.min(max, Math.max(min, analysisMs.get(uri) ?? min));
}

documents.onDidChangeContent(({ document }) => scheduleDiagnostics(document.uri, document.version, typingDelay(document.uri)));

documents.onDidClose(({ document }) => {
  clearTimeout(pendingDiagnostics.get(document.uri));
  pendingDiagnostics.delete(document.uri);
  analysed.delete(document.uri);
  analyzers.delete(document.uri);
  analysisMs.delete(document.uri);
  void connection.sendDiagnostics({ uri: document.uri, diagnostics: [] });
});

connection.onCompletion(({ textDocument, position }) => withSpec(textDocument.uri, (spec) => doComplete(spec, position, { hosts: cluster.hosts })));
connection.onHover(({ textDocument, position }) => withSpec(textDocument.uri, (spec) => doHover(spec, position, { hosts: cluster.hosts })));
connection.onDefinition(({ textDocument, position }) => withSpec(textDocument.uri, (spec) => findDefinition(spec, position)));
connection.onReferences(({ textDocument, position, context }) => withSpec(textDocument.uri, (spec) => findReferences(spec, position, context.includeDeclaration)));
connection.onPrepareRename(({ textDocument, position }) => withSpec(textDocument.uri, (spec) => prepareRename(spec, position)));
connection.onRenameRequest(({ textDocument, position, newName }) => {
  const spec = specOf(textDocument.uri);
  if (!spec) return null;
  const result = doRename(spec, position, newName);
  if ('error' in result) throw new ResponseError(-32803, result.error);
  return result;
});
connection.onDocumentSymbol(({ textDocument }) => withSpec(textDocument.uri, (spec) => documentSymbols(spec)));
connection.onCodeLens(({ textDocument }) => withSpec(textDocument.uri, (spec) => codeLenses(spec, textDocument.uri)));
connection.onFoldingRanges(({ textDocument }) => withSpec(textDocument.uri, (spec) => foldingRanges(spec)));
connection.onCodeAction(({ textDocument, range, context }) => withSpec(textDocument.uri, (spec) => codeActions(spec, range, context.diagnostics)));
connection.onDocumentFormatting(({ textDocument, options }) => withSpec(textDocument.uri, (spec) => formatDocument(spec, options)));
connection.languages.semanticTokens.on(({ textDocument }) => {
  const spec = specOf(textDocument.uri);
  return { data: spec ? semanticTokens(spec) : [] };
});

documents.listen(connection);
connection.listen();

/**
 * V8's young generation (where new objects go) stays at the size it reached while the server
 * loaded, until a large spec is opened. By default V8 doubles it (up to 16 MiB per semi-space)
 * whenever much of it survives a collection, which analysing any spec does, as its tree lives on:
 * memory the server then keeps for good, a good part of what a small spec costs. A large spec's analysis
 * needs the room, though: in a small young generation its passing objects would outlive a few
 * collections and be moved to the old generation, which then grows more than the young one would
 * have. Set after everything has loaded, because a flag changed earlier makes V8 compile Node's
 * own modules again (without their code cache), which costs more memory than it saves; V8 reads
 * the flag each time the space would grow.
 */
setFlagsFromString('--semi-space-growth-factor=1');

/**
 * V8's optimizing compiler (TurboFan) stays off until a large spec is opened, or an analysis is
 * slow: for a small spec its compiled code and the memory it compiles in cost more (several MiB
 * for good) than the milliseconds it saves; the interpreter and the baseline compiler answer such
 * a spec quickly. Set once everything has loaded, for the same reason as above; V8 reads the flag
 * each time it would optimize a function.
 */
setFlagsFromString('--no-turbofan');

// Once V8 is set as above, before the first completion asks for them.
describeSchemaKeys();
