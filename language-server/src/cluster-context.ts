import { DaemonClient } from '../../common/node/daemon-client';
import type { HostView } from '../../common/protocol';

/** How often to look for a daemon again while none answers. */
const RECONNECT_MS = 10_000;

/**
 * What the daemon says of the cluster (its hosts and their GPUs), kept current through its host
 * events. Empty while no daemon answers: the server then works from the text alone. It never
 * starts a daemon; it looks again every few seconds.
 */
export class ClusterContext {
  private current: HostView[] = [];
  private client: DaemonClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    private readonly onChange: () => void,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get hosts(): HostView[] {
    return this.current;
  }

  start(): void {
    void this.connect();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.client?.close();
  }

  private async connect(): Promise<void> {
    try {
      const client = await DaemonClient.connect({ client: 'drover-language-server', env: this.env });
      if (this.disposed) return client.close();
      this.client = client;
      client.on('drover/event/host', (host) => {
        this.current = [...this.current.filter((known) => known.name !== host.name), host].sort((a, b) => a.name.localeCompare(b.name));
        this.onChange();
      });
      await client.request('drover/subscribe', { topics: ['hosts'] });
      this.current = await client.request('drover/hosts', {});
      this.onChange();
      await client.closed();
      this.client = undefined;
      this.current = [];
      this.onChange();
    } catch {
      // No daemon (or it went away mid-way): the text alone it is, until one answers.
    }
    if (!this.disposed) {
      this.timer = setTimeout(() => void this.connect(), RECONNECT_MS);
      this.timer.unref();
    }
  }
}
