import * as path from 'node:path';
import type * as vscode from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';

/** The spec language server (dist/language-server.js), started in the background. */
export function startLanguageClient(extension: vscode.ExtensionContext, output: vscode.LogOutputChannel): LanguageClient {
  const serverModule = extension.asAbsolutePath(path.join('dist', 'language-server.js'));
  const serverOptions: ServerOptions = { module: serverModule, transport: TransportKind.ipc };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ language: 'drover-spec' }],
  };
  const client = new LanguageClient('drover', 'Drover Language Server', serverOptions, clientOptions);
  // Activation does not wait for the server: the views and commands work without it.
  client.start().catch((error: unknown) => output.error(`the spec language server did not start: ${error instanceof Error ? error.message : String(error)}`));
  return client;
}
