import { DaemonUnavailable, startDaemon, type DaemonClient } from '../../../common/node/daemon-client';
import { daemonPaths, droverHome } from '../../../common/node/daemon-paths';
import { connectDaemon, daemonScript } from './daemon-connection';
import { CliError, EXIT, type CommandOutput } from './output';

/** `drover daemon start|stop|status`. */
export async function daemonCommand(args: string[], out: CommandOutput): Promise<number> {
  const [action] = args;
  const paths = daemonPaths(droverHome());
  if (action === 'status') {
    try {
      const client = await connectDaemon(false);
      const jobs = await client.request('drover/jobs', { states: ['queued', 'running'] });
      client.close();
      const running = jobs.filter((job) => job.state === 'running').length;
      out.stdout(`running: pid ${client.daemon.pid}, Drover ${client.daemon.daemonVersion}, ${running} running, ${jobs.length - running} queued; state in ${client.daemon.home}`);
      return EXIT.ok;
    } catch (error) {
      if (error instanceof DaemonUnavailable) {
        out.stdout(`not running (state in ${paths.home})`);
        return EXIT.unavailable;
      }
      throw error;
    }
  }
  if (action === 'start') {
    const before = await connectDaemon(false).catch(() => undefined);
    if (before) {
      out.stdout(`already running: pid ${before.daemon.pid}`);
      before.close();
      return EXIT.ok;
    }
    await startDaemon(paths, process.env, daemonScript());
    const client = await connectDaemon(false);
    out.stdout(`started: pid ${client.daemon.pid}; state in ${client.daemon.home}`);
    client.close();
    return EXIT.ok;
  }
  if (action === 'stop') {
    let client: DaemonClient;
    try {
      client = await connectDaemon(false);
    } catch {
      out.stdout('not running');
      return EXIT.ok;
    }
    const closed = client.closed();
    // The daemon may close the connection before its answer arrives: its going away is the answer.
    client.request('drover/shutdown', {}).catch(() => undefined);
    await closed;
    out.stdout(`stopped (pid ${client.daemon.pid}); running jobs go on and are watched again at the next start`);
    return EXIT.ok;
  }
  throw new CliError(`drover daemon takes start, stop or status${action ? `, not '${action}'` : ''}`, EXIT.usage);
}
