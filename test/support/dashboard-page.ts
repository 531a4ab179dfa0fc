/**
 * The dashboard webview outside VS Code: the built bundle (dist/webviews) in a page made by the
 * extension's own dashboardHtml (same CSP), in headless Chromium, with a fake acquireVsCodeApi
 * that records what the page posts. Tests and the benchmark send it the messages the extension
 * sends. VS Code's theme variables are set the way VS Code sets them, on the page's root.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { FromWebviewMessage, RenderReport, ToWebviewMessage } from '../../common/protocol';
import { dashboardHtml, makeNonce } from '../../extension/src/dashboard/webview-html';
import { CHROMIUM_ARGS, findChromium } from './chromium';
import { ROOT, waitFor } from './daemon-harness';
import { THEMES, type ThemeKind } from './vscode-themes';

export const WEBVIEW_DIST = path.join(ROOT, 'dist', 'webviews');
export const SCREENSHOTS = path.join(ROOT, 'out', 'screenshots');

/** Why the page tests cannot run here, or undefined when they can. */
export function dashboardPageUnavailable(): string | undefined {
  if (!findChromium()) return 'no Chromium on PATH (apt-get install chromium, or set CHROMIUM_PATH)';
  if (!fs.existsSync(path.join(WEBVIEW_DIST, 'dashboard.js'))) return 'dist/webviews/dashboard.js is missing: run `npm run build` first';
  return undefined;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: findChromium()!, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Runs in the page before its script: the fake VS Code API (what the page posts and its saved
 * state, kept for the test), a record of CSP violations, and the theme as VS Code applies it.
 */
const PAGE_SETUP = `
window.droverPosted = [];
window.droverState = __STATE__;
window.droverCspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => window.droverCspViolations.push(event.violatedDirective + ': ' + event.blockedURI));
window.acquireVsCodeApi = () => ({
  postMessage: (message) => { window.droverPosted.push(JSON.parse(JSON.stringify(message))); if (window.droverOnPost) window.droverOnPost(message); },
  getState: () => window.droverState,
  setState: (next) => { window.droverState = next; },
});
document.addEventListener('DOMContentLoaded', () => {
  for (const [name, value] of Object.entries(__COLORS__)) document.documentElement.style.setProperty('--vscode-' + name, value);
  document.body.classList.add(__BODY_CLASS__);
});
`;

type Global = { postMessage(data: unknown, origin: string): void };

export class DashboardPage {
  private constructor(
    readonly page: Page,
    private readonly dir: string,
  ) {}

  /** Opens the page in `theme`; `state` is what vscode.getState() returns (a restored panel). */
  static async open(browser: Browser, options: { theme: ThemeKind; state?: unknown; width?: number; height?: number }): Promise<DashboardPage> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-dashboard-'));
    const url = (file: string) => pathToFileURL(path.join(WEBVIEW_DIST, file)).href;
    const html = dashboardHtml({ cspSource: 'file:', scriptUri: url('dashboard.js'), styleUris: [url('uPlot.min.css'), url('dashboard.css')], nonce: makeNonce(), title: 'Drover dashboard' });
    fs.writeFileSync(path.join(dir, 'index.html'), html);
    const context = await browser.newContext({ viewport: { width: options.width ?? 1280, height: options.height ?? 900 } });
    const page = await context.newPage();
    const theme = THEMES[options.theme];
    await page.addInitScript({
      content: PAGE_SETUP.replace('__STATE__', JSON.stringify(options.state ?? null))
        .replace('__COLORS__', JSON.stringify(theme.colors))
        .replace('__BODY_CLASS__', JSON.stringify(theme.bodyClass)),
    });
    await page.goto(pathToFileURL(path.join(dir, 'index.html')).href);
    return new DashboardPage(page, dir);
  }

  async send(message: ToWebviewMessage): Promise<void> {
    await this.page.evaluate((data) => (globalThis as unknown as Global).postMessage(data, '*'), message);
  }

  async posted(): Promise<FromWebviewMessage[]> {
    return this.page.evaluate('window.droverPosted') as Promise<FromWebviewMessage[]>;
  }

  async state(): Promise<unknown> {
    return this.page.evaluate('window.droverState');
  }

  async cspViolations(): Promise<string[]> {
    return this.page.evaluate('window.droverCspViolations') as Promise<string[]>;
  }

  /** The latest render report that satisfies `check`. */
  async report(what: string, check: (report: RenderReport) => boolean, timeoutMs = 15_000): Promise<RenderReport> {
    return waitFor(
      what,
      async () => {
        const reports = (await this.posted()).filter((message): message is RenderReport & { type: 'rendered' } => message.type === 'rendered');
        const last = reports.at(-1);
        return last && check(last) ? last : undefined;
      },
      timeoutMs,
    );
  }

  async screenshot(name: string): Promise<string> {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    const file = path.join(SCREENSHOTS, `${name}.png`);
    await this.page.screenshot({ path: file, fullPage: true });
    return file;
  }

  async close(): Promise<void> {
    await this.page.context().close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
