import * as vscode from 'vscode';

/** What the extension tests share: the extension, the test workspace, and waiting for things. */

export const EXTENSION_ID = 'drover.drover';

/** The extension under test (from `extensionDevelopmentPath`, i.e. the repo). */
export function droverExtension(): vscode.Extension<unknown> {
  const extension = vscode.extensions.getExtension(EXTENSION_ID);
  if (!extension) throw new Error(`extension ${EXTENSION_ID} is not installed in this VS Code`);
  return extension;
}

/** A file in the workspace the runner opened (a fresh copy of test/vscode/workspace/). */
export function workspaceFile(...segments: string[]): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error('VS Code has no workspace folder open');
  return vscode.Uri.joinPath(folder.uri, ...segments);
}

/** Opens a workspace file in an editor, as a person double-clicking it would. */
export async function openFile(...segments: string[]): Promise<vscode.TextEditor> {
  const document = await vscode.workspace.openTextDocument(workspaceFile(...segments));
  return vscode.window.showTextDocument(document);
}

/**
 * Polls `probe` until it returns something other than undefined/false, then returns that; fails
 * with `what` and the last value seen once `timeoutMs` is up. For things VS Code does in its own
 * time (activation, diagnostics arriving), instead of sleeping.
 */
export async function eventually<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
