import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { droverExtension, eventually, openFile, workspaceFile } from './helpers';

function labelOf(item: vscode.CompletionItem): string {
  return typeof item.label === 'string' ? item.label : item.label.label;
}

async function completionsAt(uri: vscode.Uri, position: vscode.Position): Promise<string[]> {
  const list = await vscode.commands.executeCommand<vscode.CompletionList>('vscode.executeCompletionItemProvider', uri, position);
  return list.items.map(labelOf);
}

describe('the Drover extension in a real VS Code', () => {
  it('runs in the test environment: a throwaway DROVER_HOME and the fake GPUs', () => {
    // What the extension, and the daemon it starts, inherit from the runner.
    const home = process.env.DROVER_HOME;
    assert.ok(home && fs.existsSync(home), `DROVER_HOME is a folder of the run's: ${home}`);
    assert.notEqual(path.resolve(home), path.join(os.homedir(), '.drover'), "never the user's own ~/.drover");
    // VS Code puts its own bin folder first; what matters is which nvidia-smi is found.
    const dirs = (process.env.PATH ?? '').split(path.delimiter);
    const found = dirs.find((dir) => dir && fs.existsSync(path.join(dir, 'nvidia-smi')));
    assert.equal(found && path.basename(path.dirname(found)) + '/' + path.basename(found), 'fixtures/bin', `the nvidia-smi on PATH is the stand-in: ${found}`);
    assert.ok(process.env.DROVER_FAKE_GPUS && fs.existsSync(process.env.DROVER_FAKE_GPUS), `DROVER_FAKE_GPUS names a fixture: ${process.env.DROVER_FAKE_GPUS}`);
  });

  it('activates when a .drover.yaml file opens', async () => {
    const extension = droverExtension();
    const editor = await openFile('sweep.drover.yaml');
    assert.equal(editor.document.languageId, 'drover-spec');
    await eventually('the extension to activate', () => extension.isActive);
    const { activationMs } = extension.exports as { activationMs?: number };
    assert.ok(typeof activationMs === 'number' && activationMs > 0, `it reports what activation cost: ${activationMs}`);
    // For `npm run bench`, which reads it from there.
    if (process.env.DROVER_BENCH_OUT) fs.writeFileSync(process.env.DROVER_BENCH_OUT, JSON.stringify({ activationMs }));
  });

  it('shows the language server’s diagnostics for a broken spec, with a did-you-mean', async () => {
    const { document } = await openFile('broken.drover.yaml');
    const diagnostics = await eventually('diagnostics for broken.drover.yaml', () => {
      const found = vscode.languages.getDiagnostics(document.uri);
      return found.length > 0 && found;
    });
    const unknownKey = diagnostics.find((diagnostic) => diagnostic.message.includes("unknown key 'resorces'"));
    assert.ok(unknownKey, `diagnostics: ${diagnostics.map((diagnostic) => diagnostic.message).join(' | ')}`);
    assert.match(unknownKey.message, /did you mean 'resources'\?/);
    assert.equal(unknownKey.severity, vscode.DiagnosticSeverity.Error);
    assert.equal(unknownKey.range.start.line, 4, 'on the line of the key');
    assert.equal(document.getText(unknownKey.range), 'resorces');
  });

  it('completes keys and parameter names in a sweep spec', async () => {
    const { document } = await openFile('sweep.drover.yaml');
    const uri = workspaceFile('sweep.drover.yaml');

    // A blank line at the top level: the spec's keys not yet written there.
    const keys = await eventually('key completions', async () => {
      const labels = await completionsAt(uri, new vscode.Position(document.lineCount - 1, 0));
      return labels.length > 0 && labels;
    });
    assert.ok(keys.includes('timeout') && keys.includes('retries'), `keys offered: ${keys.join(', ')}`);
    assert.ok(!keys.includes('name') && !keys.includes('sweep'), `keys already present are not offered: ${keys.join(', ')}`);

    // Inside `${{ params.` : the sweep's parameters.
    const marker = '${{ params.';
    const params = await completionsAt(uri, document.positionAt(document.getText().indexOf(marker) + marker.length));
    assert.ok(params.includes('lr') && params.includes('seed'), `parameters offered: ${params.join(', ')}`);
  });

  it('shows a code lens that submits the spec, with its run count', async () => {
    await openFile('sweep.drover.yaml');
    const uri = workspaceFile('sweep.drover.yaml');
    const lenses = await eventually('a code lens', async () => {
      const found = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri);
      return found?.length ? found : undefined;
    });
    assert.equal(lenses[0]!.command?.title, '$(play) Run on cluster: 4 runs');
    assert.equal(lenses[0]!.command?.command, 'drover.submitSpec');
  });

  it('registers every command its package.json contributes', async function () {
    const extension = droverExtension();
    const contributed: { command: string }[] = extension.packageJSON.contributes?.commands ?? [];
    if (contributed.length === 0) this.skip();
    await eventually('the extension to activate', () => extension.isActive);
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = contributed.map(({ command }) => command).filter((command) => !registered.has(command));
    assert.deepEqual(missing, [], 'contributed in package.json but not registered');
  });
});
