/**
 * `npm run editor`: Drover in a browser, in one step. Starts the VS Code server (code-server,
 * installed once into .cache/) on 127.0.0.1 with this checkout's extension loaded and the
 * `examples/` workspace open, and prints the URL to open. The daemon is the user's own (their
 * DROVER_HOME and hosts), as with the CLI. Ctrl-C stops the server; runs go on in the daemon.
 *
 * DROVER_EDITOR_PORT picks the port (default 8080; 0 for any free one). The server listens on
 * 127.0.0.1 only and, being local, without a connection token.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { installServer, remoteUri, REPO, workbenchUrl } from './code-server';

function main(): void {
  if (!fs.existsSync(path.join(REPO, 'dist', 'extension.js'))) throw new Error("dist/extension.js is missing: run 'npm run build' first");
  process.stderr.write('Drover: installing or locating the VS Code server (the first time takes about a minute)…\n');
  const entry = installServer();
  // The editor's own settings and state, kept between runs; never the user's desktop VS Code's.
  const data = path.join(os.homedir(), '.cache', 'drover-editor');
  fs.mkdirSync(path.join(data, 'user-data', 'User'), { recursive: true });
  const settings = path.join(data, 'user-data', 'User', 'settings.json');
  if (!fs.existsSync(settings)) fs.writeFileSync(settings, JSON.stringify({ 'workbench.startupEditor': 'none', 'security.workspace.trust.enabled': false }, null, 2));
  const port = process.env['DROVER_EDITOR_PORT'] ?? '8080';
  const server = spawn(
    process.execPath,
    [
      entry,
      '--accept-server-license-terms',
      '--host', '127.0.0.1',
      '--port', port,
      '--without-connection-token',
      '--telemetry-level', 'off',
      '--user-data-dir', path.join(data, 'user-data'),
      '--extensions-dir', path.join(data, 'extensions'),
      '--server-data-dir', path.join(data, 'server-data'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let announced = false;
  server.stdout.on('data', (chunk: Buffer) => {
    const listening = /listening on (\d+)/.exec(chunk.toString());
    if (!listening || announced) return;
    announced = true;
    const actual = Number(listening[1]);
    const url = workbenchUrl(actual, path.join(REPO, 'examples'), [['extensionDevelopmentPath', remoteUri(actual, REPO)]]);
    process.stdout.write(`\nDrover is running in VS Code at:\n\n  ${url}\n\nOpen it in a browser (Ctrl-C here stops the editor; runs go on).\n`);
  });
  server.once('exit', (code, signal) => {
    process.stderr.write(`the VS Code server ended (${signal ?? code})\n`);
    process.exit(code ?? 1);
  });
  for (const name of ['SIGINT', 'SIGTERM'] as const) process.once(name, () => server.kill('SIGTERM'));
}

main();
