// The extension's daemon connection and log following against a real daemon (no VS Code needed).
import assert from 'node:assert/strict';
import { DaemonUnavailable } from '../../../common/node/daemon-client';
import { FINAL_STATES } from '../../../common/protocol';
import { DaemonConnection, type ConnectionState } from '../../../extension/src/daemon/connection';
import { LogFollower, type LogSource } from '../../../extension/src/logs/log-follower';
import { daemonScript } from '../../../runner/src/cli/daemon-connection';
import { DaemonHarness, waitFor } from '../../support/daemon-harness';

describe('extension: daemon connection (real daemon)', function () {
  this.timeout(60_000);
  let harness: DaemonHarness;
  let connection: DaemonConnection;
  const states: ConnectionState['kind'][] = [];

  beforeEach(() => {
    harness = new DaemonHarness();
    states.length = 0;
    connection = new DaemonConnection({ clientName: 'extension-test', env: () => harness.env, daemonScript: daemonScript(), backoff: () => 50 });
    connection.onDidChange((state) => states.push(state.kind));
  });

  afterEach(async () => {
    connection.dispose();
    await harness.dispose();
  });

  it('says the daemon is stopped, starts it only when asked, and picks up a restarted one by itself', async () => {
    await assert.rejects(connection.connect(false), DaemonUnavailable);
    assert.equal(connection.state.kind, 'stopped');
    assert.throws(() => connection.client(), DaemonUnavailable);
    const client = await connection.connect(true);
    assert.equal(connection.state.kind, 'connected');
    assert.equal(client.daemon.home, harness.home);

    assert.equal((await harness.cli(['daemon', 'stop'])).code, 0);
    await waitFor('the connection to notice the daemon went away', () => connection.state.kind === 'stopped');
    assert.equal((await harness.cli(['daemon', 'start'])).code, 0);
    await waitFor('the connection to come back on its own', () => connection.state.kind === 'connected');
    assert.notEqual(connection.client(), client);
    assert.deepEqual(
      states.filter((kind, index) => kind !== states[index - 1]),
      ['stopped', 'connected', 'stopped', 'connected'],
    );
  });

  it('stops the daemon and says so', async () => {
    await connection.connect(true);
    await connection.stopDaemon();
    await waitFor('the stopped state', () => connection.state.kind === 'stopped');
    assert.match((await harness.cli(['daemon', 'status'])).stdout, /not running/);
  });

  it('reconnects when only the connection drops', async () => {
    const client = await connection.connect(false).catch(() => connection.connect(true));
    client.close();
    await waitFor('a new connection', () => connection.state.kind === 'connected' && connection.client() !== client);
    assert.equal((await connection.client().request('drover/jobs', {})).length, 0);
  });

  it("follows a run's log across a daemon restart, each line once, and ends with its outcome", async () => {
    const client = await connection.connect(true);
    const spec = 'name: chatty\nrun: "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.25; done; printf \'50%%\\\\r100%%\\\\n\'"\nresources: { cpus: 0.1 }\n';
    const [job] = (await client.request('drover/submit', { specText: spec, cwd: harness.home })).jobs;
    const written: string[] = [];
    const logs = new LogFollower(job!.id, (data) => written.push(data));
    const source: LogSource = {
      logs: (params) => connection.client().request('drover/logs', params),
      job: (id) => connection.client().request('drover/job', { id }),
    };
    const subscribe = async () => {
      const stream = await connection.secondary('logs');
      stream.on('drover/event/log', (chunk) => logs.onEvent(chunk, source));
      await stream.request('drover/subscribe', { topics: ['logs'], jobIds: [job!.id] });
      await logs.catchUp(source);
      return stream;
    };
    let stream = await subscribe();
    await waitFor('the first lines', () => written.join('').includes('line 2'));

    // The daemon dies mid-run (kill -9); the run goes on; a new daemon re-adopts it.
    stream.close();
    process.kill(client.daemon.pid, 'SIGKILL');
    await waitFor('the connection to drop', () => connection.state.kind === 'stopped');
    await connection.connect(true);
    stream = await subscribe();

    const done = await waitFor('the run to end', async () => {
      const view = await connection.client().request('drover/job', { id: job!.id });
      return FINAL_STATES.includes(view.state) && view;
    });
    await logs.finish(done, source);
    stream.close();
    const text = written.join('');
    for (let i = 1; i <= 6; i++) assert.equal(text.split(`line ${i}\r\n`).length, 2, `line ${i} once in:\n${JSON.stringify(text)}`);
    assert.match(text, /50%\r100%\r\n/);
    assert.match(text, /── run \d+ chatty succeeded after \d+s ──/);
  });
});
