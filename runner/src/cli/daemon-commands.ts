import { DaemonUnavailable, type DaemonClient } from '../../../common/node/daemon-client';
import { daemonPaths, droverHome } from '../../../common/node/daemon-paths';
import { connectDaemon } from './daemon-connection';
import { CliError, EXIT, type CommandOutput } from './output';

/** `drover daemon start|stop|status`; with `--json`, one object that says the same. */
export async function daemonCommand(args: string[], options: { json: boolean }, out: CommandOutput): Promise<number> {
  const [action] = args;
  const paths = daemonPaths(droverHome());
  const say = (text: string, fields: Record<string, unknown>) => out.stdout(options.json ? JSON.stringify(fields, null, 2) : text);
  if (action === 'status') {
    try {
      const client = await connectDaemon(false);
      const jobs = await client.request('drover/jobs', { states: ['queued', 'running'] });
      client.close();
      const running = jobs.filter((job) => job.state === 'running').length;
      const { pid, daemonVersion: version, home } = client.daemon;
      say(`running: pid ${pid}, Drover ${version}, ${running} running, ${jobs.length - running} queued; state in ${home}`, { running: true, pid, version, home, runningJobs: running, queuedJobs: jobs.length - running });
      return EXIT.ok;
    } catch (error) {
      if (error instanceof DaemonUnavailable) {
        say(`not running (state in ${paths.home})`, { running: false, home: paths.home });
        return EXIT.unavailable;
      }
      throw error;
    }
  }
  if (action === 'start') {
    const before = await connectDaemon(false).catch(() => undefined);
    if (before) {
      say(`already running: pid ${before.daemon.pid}`, { started: false, pid: before.daemon.pid, home: before.daemon.home });
      before.close();
      return EXIT.ok;
    }
    const client = await connectDaemon(true);
    say(`started: pid ${client.daemon.pid}; state in ${client.daemon.home}`, { started: true, pid: client.daemon.pid, home: client.daemon.home });
    client.close();
    return EXIT.ok;
  }
  if (action === 'stop') {
    let client: DaemonClient;
    try {
      client = await connectDaemon(false);
    } catch {
      say('not running', { stopped: false });
      return EXIT.ok;
    }
    const closed = client.closed();
    // The daemon may close the connection before its answer arrives: its going away is the answer.
    client.request('drover/shutdown', {}).catch(() => undefined);
    await closed;
    say(`stopped (pid ${client.daemon.pid}); running jobs go on and are watched again at the next start`, { stopped: true, pid: client.daemon.pid });
    return EXIT.ok;
  }
  throw new CliError(`drover daemon takes start, stop or status${action ? `, not '${action}'` : ''}`, EXIT.usage);
}
