import { join } from 'node:path';
import { DaemonClient } from '../../../common/node/daemon-client';
import { packageRoot } from '../package-root';

/** The script that runs a daemon, for starting one on demand. */
export function daemonScript(): string {
  return join(packageRoot(), 'bin', 'drover-daemon.js');
}

/** Connects to the user's daemon for a CLI command, starting one when `start` and none runs. */
export function connectDaemon(start: boolean): Promise<DaemonClient> {
  return DaemonClient.connect({ client: 'drover-cli', ...(start && { startWith: daemonScript() }) });
}
