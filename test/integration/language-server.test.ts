// Drives the bundled language server (bin/drover-language-server.js → dist/language-server.js)
// over real LSP stdio, as an editor would: initialize, open/change/close a spec, shut down.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import {
  CodeLensRequest,
  CompletionRequest,
  DefinitionRequest,
  DocumentFormattingRequest,
  DocumentSymbolRequest,
  HoverRequest,
  RenameRequest,
  DidChangeTextDocumentNotification,
  DidCloseTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  ShutdownRequest,
  type PublishDiagnosticsParams,
  type Range,
} from 'vscode-languageserver-protocol';

import { DaemonHarness } from '../support/daemon-harness';

const repoRoot = path.resolve(__dirname, '../../..');
const serverBin = path.join(repoRoot, 'bin/drover-language-server.js');
const serverBundle = path.join(repoRoot, 'dist/language-server.js');

const WAIT_MS = 10_000;
const URI = 'file:///tmp/ws/train.drover.yaml';

/** Queues every publishDiagnostics the server sends, so none is missed between waits. */
class DiagnosticsInbox {
  private readonly queue: PublishDiagnosticsParams[] = [];
  private waiter: { uri: string; resolve: (params: PublishDiagnosticsParams) => void } | undefined;

  constructor(connection: MessageConnection, private readonly describeServer: () => string) {
    connection.onNotification(PublishDiagnosticsNotification.type, (params) => {
      if (this.waiter?.uri === params.uri) {
        const { resolve } = this.waiter;
        this.waiter = undefined;
        resolve(params);
      } else {
        this.queue.push(params);
      }
    });
  }

  /** The next diagnostics published for `uri`; rejects after `WAIT_MS` with a clear message. */
  next(uri: string): Promise<PublishDiagnosticsParams> {
    const queued = this.queue.findIndex((params) => params.uri === uri);
    if (queued >= 0) return Promise.resolve(this.queue.splice(queued, 1)[0]);
    assert.equal(this.waiter, undefined, 'only one diagnostics wait at a time');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no textDocument/publishDiagnostics for ${uri} within ${WAIT_MS} ms; ${this.describeServer()}`));
      }, WAIT_MS);
      this.waiter = { uri, resolve: (params) => { clearTimeout(timer); resolve(params); } };
    });
  }
}

/** Asserts that `range` is well-ordered and lies within `text` (positions are 0-based, UTF-16). */
function assertInside(range: Range, text: string): void {
  const lines = text.split(/\r?\n/);
  for (const position of [range.start, range.end]) {
    assert.ok(position.line >= 0 && position.line < lines.length, `line ${position.line} is outside the ${lines.length}-line document`);
    const length = lines[position.line].length;
    assert.ok(position.character >= 0 && position.character <= length,
      `character ${position.character} is outside line ${position.line} (length ${length})`);
  }
  const { start, end } = range;
  assert.ok(start.line < end.line || (start.line === end.line && start.character <= end.character),
    `range ends before it starts: ${JSON.stringify(range)}`);
}

/** Resolves with the exit code once the child exits; rejects after `WAIT_MS`. */
function exitOf(exited: Promise<number | null>): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the language server did not exit within ${WAIT_MS} ms`)), WAIT_MS);
  });
  return Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
}

describe('language server over LSP stdio', function () {
  this.timeout(30_000);

  let child: ChildProcessWithoutNullStreams;
  let connection: MessageConnection;
  let inbox: DiagnosticsInbox;
  let exited: Promise<number | null>;
  let stderr = '';

  before(() => {
    assert.ok(fs.existsSync(serverBundle), `${serverBundle} does not exist: run \`npm run build\` first`);
    child = spawn(process.execPath, [serverBin, '--stdio'], { cwd: repoRoot, stdio: 'pipe' });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    inbox = new DiagnosticsInbox(connection, () =>
      `server ${child.exitCode === null ? 'still running' : `exited with ${child.exitCode}`}; stderr: ${stderr || '(empty)'}`);
    connection.listen();
  });

  after(() => {
    connection?.dispose();
    if (child && child.exitCode === null && child.signalCode === null) child.kill();
  });

  it('initializes and names itself', async () => {
    const result = await connection.sendRequest(InitializeRequest.type, { processId: process.pid, rootUri: null, capabilities: {} });
    assert.equal(result.serverInfo?.name, 'drover-language-server');
    assert.notEqual(result.capabilities.textDocumentSync, undefined, 'textDocumentSync is set');
    await connection.sendNotification(InitializedNotification.type, {});
  });

  it('reports a misspelled key on open', async () => {
    const text = 'name: train\nrun: python3 train.py\nresurces: { gpus: 1 }\n';
    const published = inbox.next(URI);
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: URI, languageId: 'drover-spec', version: 1, text },
    });
    const { version, diagnostics } = await published;
    assert.equal(version, 1);
    assert.equal(diagnostics.length, 1, JSON.stringify(diagnostics));
    const [diagnostic] = diagnostics;
    assert.equal(diagnostic.source, 'drover');
    assert.equal(diagnostic.code, 'unknown-key');
    assert.ok(typeof diagnostic.message === 'string', 'a plain-text message');
    assert.match(diagnostic.message, /did you mean 'resources'/);
    assert.equal(diagnostic.severity, 1);
    assert.deepEqual(diagnostic.range, { start: { line: 2, character: 0 }, end: { line: 2, character: 'resurces'.length } });
  });

  it('clears the diagnostics once the key is fixed', async () => {
    const published = inbox.next(URI);
    await connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri: URI, version: 2 },
      contentChanges: [{ text: 'name: train\nrun: python3 train.py\nresources: { gpus: 1 }\n' }],
    });
    const { version, diagnostics } = await published;
    assert.equal(version, 2);
    assert.deepEqual(diagnostics, []);
  });

  it('reports broken YAML with ranges inside the document', async () => {
    const text = 'name: train\nrun: python3 train.py\nplacement: { hosts: [local\n';
    const published = inbox.next(URI);
    await connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri: URI, version: 3 },
      contentChanges: [{ text }],
    });
    const { version, diagnostics } = await published;
    assert.equal(version, 3);
    assert.ok(diagnostics.some((d) => d.code === 'yaml-syntax'), `no yaml-syntax diagnostic in ${JSON.stringify(diagnostics)}`);
    for (const diagnostic of diagnostics) assertInside(diagnostic.range, text);
  });

  it('publishes only the newest version when edits come faster than analysis', async () => {
    const base = 'name: train\nrun: python3 train.py\n';
    const published = inbox.next(URI);
    for (let version = 4; version <= 8; version++) {
      await connection.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri: URI, version },
        contentChanges: [{ text: `${base}retries: ${version === 8 ? 2 : 'x'}\n` }],
      });
    }
    const { version, diagnostics } = await published;
    assert.equal(version, 8, 'the burst of edits is analysed once, at its last version');
    assert.deepEqual(diagnostics, []);
  });

  it('answers completion, hover, definition, rename, symbols and formatting', async () => {
    const text = [
      'name: nightly',
      'jobs:',
      '  prep: { run: python3 prep.py, outputs: { data: "where the data is" } }',
      '  train:',
      '    needs: [prep]',
      '    run: python3 train.py --data ${{ jobs.prep.outputs.data }}',
      '    resources: { gpus: 1 }',
      '    ',
      '',
    ].join('\n');
    const published = inbox.next(URI);
    await connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: URI, version: 9 }, contentChanges: [{ text }] });
    assert.deepEqual((await published).diagnostics, []);
    const document = { uri: URI };

    const completion = await connection.sendRequest(CompletionRequest.type, { textDocument: document, position: { line: 7, character: 4 } });
    const labels = (Array.isArray(completion) ? completion : (completion?.items ?? [])).map((item) => item.label);
    assert.ok(labels.includes('timeout') && labels.includes('sweep'), `keys of a job: ${labels.join(', ')}`);
    assert.ok(!labels.includes('needs') && !labels.includes('run'), 'keys already present are not offered');

    const hover = await connection.sendRequest(HoverRequest.type, { textDocument: document, position: { line: 6, character: 6 } });
    assert.match(JSON.stringify(hover?.contents), /What one run needs/);

    const definition = await connection.sendRequest(DefinitionRequest.type, { textDocument: document, position: { line: 4, character: 13 } });
    const [target] = (Array.isArray(definition) ? definition : [definition]) as { range: Range }[];
    assert.deepEqual(target!.range, { start: { line: 2, character: 2 }, end: { line: 2, character: 6 } });

    const edit = await connection.sendRequest(RenameRequest.type, { textDocument: document, position: { line: 2, character: 3 }, newName: 'prepare' });
    assert.equal(edit?.changes?.[URI]?.length, 3, 'the key, the needs entry and the expression');

    const symbols = await connection.sendRequest(DocumentSymbolRequest.type, { textDocument: document });
    const [workflow] = symbols as { name: string; children?: { name: string }[] }[];
    assert.equal(workflow!.name, 'nightly');
    assert.deepEqual(workflow!.children?.map((child) => child.name), ['prep', 'train']);

    const formatting = await connection.sendRequest(DocumentFormattingRequest.type, { textDocument: document, options: { tabSize: 2, insertSpaces: true } });
    assert.ok(Array.isArray(formatting));

    const [lens] = (await connection.sendRequest(CodeLensRequest.type, { textDocument: document })) ?? [];
    assert.deepEqual(lens, {
      range: { start: { line: 0, character: 0 }, end: { line: 0, character: 4 } },
      command: { title: '$(play) Run on cluster: 2 runs', command: 'drover.submitSpec', arguments: [URI] },
    });
  });

  it('offers a code lens that submits a spec, or says why it cannot run', async () => {
    const sweep = 'name: sweep\nrun: python3 train.py --lr ${{ params.lr }}\nsweep: { parameters: { lr: [0.1, 0.01, 0.001] } }\n';
    let published = inbox.next(URI);
    await connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: URI, version: 20 }, contentChanges: [{ text: sweep }] });
    await published;
    const titles = async () => ((await connection.sendRequest(CodeLensRequest.type, { textDocument: { uri: URI } })) ?? []).map((lens) => lens.command?.title);
    assert.deepEqual(await titles(), ['$(play) Run on cluster: 3 runs']);
    published = inbox.next(URI);
    await connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: URI, version: 21 }, contentChanges: [{ text: `${sweep}resurces: {}\ntimeout: soon\n` }] });
    await published;
    assert.deepEqual(await titles(), ['$(error) 2 errors to fix before it can run']);
  });

  it('keeps diagnostics right through small edits of a large workflow, in one job and across jobs', async () => {
    const jobs = Array.from({ length: 60 }, (_, i) => `  step${i}:\n    needs: [${i === 0 ? '' : `step${Math.floor(i / 2)}`}]\n    run: python3 step.py --part ${i}\n`);
    let text = `name: big\njobs:\n${jobs.join('')}`;
    let version = 30;
    let published = inbox.next(URI);
    await connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: URI, version }, contentChanges: [{ text }] });
    assert.deepEqual((await published).diagnostics, []);

    /** Replaces the first `from` with `to` by an incremental change, as an editor sends it; the diagnostics of that version. */
    const edit = async (from: string, to: string): Promise<string[]> => {
      const at = text.indexOf(from);
      assert.ok(at >= 0, `'${from}' is in the text`);
      const positionOf = (offset: number) => {
        const before = text.slice(0, offset).split('\n');
        return { line: before.length - 1, character: before[before.length - 1]!.length };
      };
      const range = { start: positionOf(at), end: positionOf(at + from.length) };
      text = text.slice(0, at) + to + text.slice(at + from.length);
      published = inbox.next(URI);
      await connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri: URI, version: ++version }, contentChanges: [{ range, text: to }] });
      const params = await published;
      assert.equal(params.version, version);
      for (const diagnostic of params.diagnostics) assertInside(diagnostic.range, text);
      return params.diagnostics.map((diagnostic) => `${diagnostic.range.start.line}: ${diagnostic.message}`);
    };

    // One job: its new problem, where it is.
    const retriesLine = 2 + 30 * 3 + 3;
    assert.deepEqual(await edit('--part 30\n', '--part 30\n    retries: lots\n'), [`${retriesLine}: 'jobs.step30.retries' is a string; expected a whole number`]);
    // Across jobs: renaming step15 breaks the needs of step30 and step31, whose text did not change.
    const renamed = await edit('  step15:', '  stage15:');
    assert.deepEqual(renamed.filter((line) => line.includes('needs')), [
      `${2 + 30 * 3 + 1}: job 'step30' needs 'step15', which is not a job of this workflow; did you mean 'step1'?`,
      `${2 + 31 * 3 + 2}: job 'step31' needs 'step15', which is not a job of this workflow; did you mean 'step1'?`,
    ]);
    // A line added above every later job moves their problems with them.
    const moved = await edit('  step1:\n', '  step1:\n    # a comment\n');
    assert.equal(moved.length, 3);
    assert.ok(moved.includes(`${retriesLine + 1}: 'jobs.step30.retries' is a string; expected a whole number`), moved.join('\n'));
    await edit('  stage15:', '  step15:');
    assert.deepEqual(await edit('    retries: lots\n', ''), []);
  });

  it('clears the diagnostics on close', async () => {
    const published = inbox.next(URI);
    await connection.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri: URI } });
    assert.deepEqual((await published).diagnostics, []);
  });

  it('exits with code 0 after shutdown and exit', async () => {
    await connection.sendRequest(ShutdownRequest.type);
    await connection.sendNotification(ExitNotification.type);
    assert.equal(await exitOf(exited), 0, `stderr: ${stderr || '(empty)'}`);
  });
});

describe('language server with a running daemon', function () {
  this.timeout(60_000);
  const uri = 'file:///tmp/ws/big.drover.yaml';
  let harness: DaemonHarness;
  let child: ChildProcessWithoutNullStreams;
  let connection: MessageConnection;
  let inbox: DiagnosticsInbox;

  before(async () => {
    harness = new DaemonHarness({ gpus: 'two-a100.json' });
    assert.match((await harness.cli(['daemon', 'start'])).stdout, /started/);
    child = spawn(process.execPath, [serverBin, '--stdio'], { cwd: repoRoot, stdio: 'pipe', env: harness.env });
    connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    inbox = new DiagnosticsInbox(connection, () => `server ${child.exitCode === null ? 'running' : `exited with ${child.exitCode}`}`);
    connection.listen();
    await connection.sendRequest(InitializeRequest.type, { processId: process.pid, rootUri: null, capabilities: {} });
    await connection.sendNotification(InitializedNotification.type, {});
  });

  after(async () => {
    connection?.dispose();
    if (child && child.exitCode === null) child.kill();
    await harness?.dispose();
  });

  it('warns about what no host can give, and completes host names, from the live cluster', async () => {
    const text = 'name: big\nrun: python3 train.py\nresources: { gpus: 8 }\n';
    // The server may check the spec before it has heard from the daemon: wait for the warning.
    let published = inbox.next(uri);
    await connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: 'drover-spec', version: 1, text } });
    let diagnostics = (await published).diagnostics;
    while (!diagnostics.some((d) => d.code === 'gpu-capacity')) diagnostics = (await inbox.next(uri)).diagnostics;
    const warning = diagnostics.find((d) => d.code === 'gpu-capacity')!;
    assert.equal(warning.severity, 2);
    assert.equal(warning.message, 'no host has 8 GPUs; the largest, local, has 2');
    assert.deepEqual(warning.range, { start: { line: 2, character: 19 }, end: { line: 2, character: 20 } });

    const placed = 'file:///tmp/ws/placed.drover.yaml';
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: placed, languageId: 'drover-spec', version: 1, text: 'run: python3 train.py\nplacement: { hosts: [] }\n' },
    });
    const completion = await connection.sendRequest(CompletionRequest.type, { textDocument: { uri: placed }, position: { line: 1, character: 21 } });
    const labels = (Array.isArray(completion) ? completion : (completion?.items ?? [])).map((item) => item.label);
    assert.ok(labels.includes('local'), `host names: ${labels.join(', ')}`);

    // Without a daemon there is no cluster to judge by: the warning goes.
    published = inbox.next(uri);
    await harness.cli(['daemon', 'stop']);
    diagnostics = (await published).diagnostics;
    while (diagnostics.some((d) => d.code === 'gpu-capacity')) diagnostics = (await inbox.next(uri)).diagnostics;
    assert.deepEqual(diagnostics, []);
  });
});
