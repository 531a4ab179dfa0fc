import { createHash } from 'node:crypto';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';

/**
 * Where one user's daemon keeps its state. `DROVER_HOME` overrides the platform's data folder
 * (tests give each daemon its own).
 */
export function droverHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env['DROVER_HOME']) return env['DROVER_HOME'];
  if (process.platform === 'win32') return join(env['LOCALAPPDATA'] ?? join(homedir(), 'AppData', 'Local'), 'Drover');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'Drover');
  return join(env['XDG_DATA_HOME'] ?? join(homedir(), '.local', 'share'), 'drover');
}

export interface DaemonPaths {
  home: string;
  database: string;
  lock: string;
  socket: string;
  runs: string;
  daemonLog: string;
  /** What TCP clients must show, when the daemon listens on TCP at all. */
  token: string;
}

export function daemonPaths(home: string): DaemonPaths {
  return {
    home,
    database: join(home, 'drover.db'),
    lock: join(home, 'daemon.lock'),
    socket: socketPath(home),
    runs: join(home, 'runs'),
    daemonLog: join(home, 'daemon.log'),
    token: join(home, 'token'),
  };
}

/** A Unix socket inside the 0700 home, or on Windows a named pipe private to this home. */
function socketPath(home: string): string {
  if (process.platform === 'win32') {
    const id = createHash('sha256').update(`${userInfo().username}\0${home}`).digest('hex').slice(0, 16);
    return `\\\\.\\pipe\\drover-${id}`;
  }
  return join(home, 'daemon.sock');
}
