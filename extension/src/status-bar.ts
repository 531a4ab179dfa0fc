import * as vscode from 'vscode';
import { statusText } from './model/status-text';
import type { RunStore } from './store/run-store';

/**
 * "Drover: 3 running · 5 queued · 4/6 GPUs", focusing the Queue view on click; "Drover: daemon
 * stopped" with a click that starts it.
 */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('drover.status', vscode.StatusBarAlignment.Left, 50);
  private readonly subscription: vscode.Disposable;

  constructor(private readonly store: RunStore) {
    this.item.name = 'Drover';
    this.subscription = store.onDidChange((change) => (change.reloaded || change.hosts || change.jobs.length > 0) && this.update());
    this.update();
    this.item.show();
  }

  /** The text without its icon (what the tests read). */
  get text(): string {
    return statusText(this.store.daemon.state, [...this.store.jobs], this.store.hosts);
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }

  private update(): void {
    const { state, reason } = this.store.daemon;
    const icon = state === 'stopped' ? '$(debug-disconnect)' : state === 'connecting' ? '$(loading~spin)' : '$(server-process)';
    this.item.text = `${icon} ${this.text}`;
    if (state === 'stopped') {
      this.item.tooltip = `${reason ?? 'The Drover daemon does not answer.'}\nClick to start it.`;
      this.item.command = 'drover.startDaemon';
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
    } else {
      this.item.tooltip = state === 'connected' ? 'Runs started by Drover and GPUs they hold, of all GPUs on its hosts. Click to show the queue.' : 'Connecting to the Drover daemon…';
      this.item.command = 'drover.queue.focus';
      this.item.backgroundColor = undefined;
    }
  }
}
