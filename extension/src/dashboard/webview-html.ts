/**
 * The dashboard page, as a string: its one script and style sheets from the extension's dist/
 * folder, under a strict Content-Security-Policy (no inline script or style, the script only by
 * its nonce, nothing from the network). Free of `vscode`, so the page harness builds the same page.
 */
export interface DashboardPage {
  /** The webview's `cspSource` (where its resources may come from). */
  cspSource: string;
  scriptUri: string;
  styleUris: string[];
  nonce: string;
  title: string;
}

export function dashboardHtml(page: DashboardPage): string {
  const csp = [
    "default-src 'none'",
    `img-src ${page.cspSource} data:`,
    `style-src ${page.cspSource}`,
    `font-src ${page.cspSource}`,
    `script-src 'nonce-${page.nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
${page.styleUris.map((uri) => `<link rel="stylesheet" href="${escapeAttribute(uri)}">`).join('\n')}
<title>${escapeText(page.title)}</title>
</head>
<body>
<main id="app" aria-live="polite"></main>
<script nonce="${page.nonce}" src="${escapeAttribute(page.scriptUri)}"></script>
</body>
</html>
`;
}

/** A fresh nonce per page: 128 random bits. */
export function makeNonce(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

function escapeText(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
