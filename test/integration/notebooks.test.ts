import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CellEvent, CellEventsChunk, DaemonRequests, JobDetail } from '../../common/protocol';
import { DaemonHarness, ROOT, waitFor } from '../support/daemon-harness';
import { FAILING_CELLS, kernelsUnavailable, writeAnalysisNotebook, writeNotebook } from '../support/notebooks';
import { SshTestbed } from '../support/ssh-testbed';
import { skipUnlessAvailable } from '../support/machine-lock';

/**
 * Notebook runs end to end, on real Jupyter kernels: the per-cell driver started by the daemon
 * on the local host and on an SSH test host, read back through the protocol and the CLI.
 */
describe('Notebook runs', function () {
  this.timeout(120_000);
  let harness: DaemonHarness;
  let workdir: string;

  before(function () {
    const reason = kernelsUnavailable();
    if (reason) {
      console.log(`      skipped: no real Jupyter kernel here: ${reason}`);
      this.skip();
    }
  });

  const rpc = <M extends keyof DaemonRequests>(method: M, params: DaemonRequests[M]['params']) => harness.request(method, params);

  const submit = async (specText: string, host?: string) => (await rpc('drover/submit', { specText, cwd: workdir, ...(host !== undefined && { host }) })).jobs;
  const ended = (id: number, timeoutMs = 60_000) =>
    waitFor(`run ${id} to end`, async () => {
      const detail = await rpc('drover/job', { id });
      return ['succeeded', 'failed', 'cancelled'].includes(detail.state) ? detail : undefined;
    }, timeoutMs);

  /** All cell events of a run's last attempt, read in small steps from offsets as a client resumes. */
  async function cellEvents(id: number): Promise<CellEvent[]> {
    const events: CellEvent[] = [];
    let offset = 0;
    for (;;) {
      const chunk: CellEventsChunk = await rpc('drover/cells', { id, offset });
      events.push(...chunk.events);
      if (chunk.nextOffset === offset) return events;
      offset = chunk.nextOffset;
    }
  }

  /** The cells' starts and finishes as `start 1`, `finish 1 ok`, ... (the injected cell as `1+`). */
  const outline = (events: CellEvent[]) =>
    events.flatMap((event) => {
      if (event.event === 'start') return [`start ${event.cell}${event.injected ? '+' : ''}`];
      if (event.event === 'finish') return [`finish ${event.cell}${event.injected ? '+' : ''} ${event.status}`];
      return [];
    });

  const outputsOf = (events: CellEvent[], cell: number) => events.flatMap((event) => (event.event === 'output' && event.cell === cell && !event.injected ? [event.output] : []));
  const streamText = (events: CellEvent[], cell: number, name: string) => outputsOf(events, cell).filter((output) => output.output_type === 'stream' && output.name === name).map((output) => output.text).join('');

  /** What every run of the analysis notebook with lr=0.01 shows, wherever it ran. */
  async function checkAnalysisRun(run: JobDetail, events: CellEvent[]): Promise<void> {
    assert.equal(run.state, 'succeeded', run.reason);
    assert.equal(events[0]?.event, 'begin');
    assert.equal(events.at(-1)?.event, 'end');
    // The markdown cell is not run; the injected parameters follow the `parameters` cell.
    assert.deepEqual(outline(events), ['start 1', 'finish 1 ok', 'start 1+', 'finish 1+ ok', 'start 2', 'finish 2 ok', 'start 3', 'finish 3 ok']);
    assert.equal(streamText(events, 2, 'stdout'), 'lr is 0.01 for default\n::metric step=1 loss=0.5\n');
    assert.equal(streamText(events, 2, 'stderr'), 'careful\n');
    const html = outputsOf(events, 3).find((output) => output.output_type === 'execute_result');
    assert.equal(html?.data?.['text/html'], '<b>done</b>');
    // Metrics from the cell, both forms, are credited to it and are the run's metric points.
    const cellPoints = events.flatMap((event) => ((event.event === 'output' || event.event === 'metrics') && event.cell === 2 ? (event.points ?? []) : []));
    assert.deepEqual(cellPoints.map((point) => [point.step, point.value]).sort(), [[1, 0.5], [2, 0.25]]);
    const series = await rpc('drover/metrics', { id: run.id });
    assert.deepEqual(series.map((each) => [each.name, each.points.map((point) => [point.step, point.value]).sort()]), [['loss', [[1, 0.5], [2, 0.25]]]]);
    // The executed notebook is kept with the run, outputs in place.
    const executed = run.attemptList.at(-1)!.notebookPath;
    assert.ok(executed && existsSync(executed), `the executed notebook is at ${executed}`);
    const notebook = JSON.parse(readFileSync(executed, 'utf8')) as { cells: { source: string[]; outputs?: { text?: string[]; data?: Record<string, string[]> }[]; metadata: { tags?: string[] } }[] };
    assert.equal(notebook.cells.length, 5, 'the injected parameters cell is in the executed notebook');
    assert.deepEqual(notebook.cells[2]!.metadata.tags, ['injected-parameters']);
    // nbformat stores multi-line text as lists of lines.
    assert.match(notebook.cells[2]!.source.join(''), /^lr = 0\.01$/m);
    assert.equal(notebook.cells[3]!.outputs![0]!.text!.join(''), 'lr is 0.01 for default\n::metric step=1 loss=0.5\n');
    assert.equal([notebook.cells[4]!.outputs![0]!.data!['text/html']].flat().join(''), '<b>done</b>');
  }

  async function checkFailingRun(run: JobDetail, events: CellEvent[]): Promise<void> {
    assert.equal(run.state, 'failed');
    assert.equal(run.exitCode, 1);
    assert.deepEqual(outline(events), ['start 0', 'finish 0 ok', 'start 1', 'finish 1 error'], 'the cell after the failing one never ran');
    const error = outputsOf(events, 1).find((output) => output.output_type === 'error');
    assert.equal(error?.ename, 'ZeroDivisionError');
    // eslint-disable-next-line no-control-regex -- the colours IPython puts in tracebacks
    const traceback = error!.traceback!.join('\n').replace(/\x1b\[[0-9;]*m/g, '');
    assert.match(traceback, /----> 3 divide\(x, 0\)[\s\S]*----> 2\s+return a \/ b/);
    assert.equal(outputsOf(events, 2).length, 0);
    const log = readFileSync(run.attemptList.at(-1)!.logPath, 'utf8');
    assert.match(log, /first\n[\s\S]*ZeroDivisionError/, 'the traceback is in the run log too');
  }

  describe('on the local host', () => {
    beforeEach(() => {
      harness = new DaemonHarness();
      workdir = mkdtempSync(join(tmpdir(), 'drover-notebook-'));
    });

    afterEach(async () => {
      await harness?.dispose();
      rmSync(workdir, { recursive: true, force: true });
    });

    it('runs a notebook cell by cell: events in order as they happen, outputs, injected parameters, metrics and the executed notebook', async () => {
      writeAnalysisNotebook(workdir);
      // Live: a subscribed client gets the events as the daemon reads them, offsets contiguous.
      const client = await harness.client();
      const live: CellEventsChunk[] = [];
      client.on('drover/event/cells', (chunk) => live.push(chunk));
      await client.request('drover/subscribe', { topics: ['cells'] });
      try {
        const [job] = await submit('name: analysis\nnotebook: analysis.ipynb\nparams: { lr: 0.01 }\n');
        const run = await ended(job!.id);
        const events = await cellEvents(job!.id);
        await checkAnalysisRun(run, events);
        await waitFor('the last live chunk', () => live.at(-1)?.complete);
        live.reduce((offset, chunk) => {
          assert.equal(chunk.offset, offset, 'live chunks follow each other');
          return chunk.nextOffset;
        }, 0);
        assert.deepEqual(live.flatMap((chunk) => chunk.events), events, 'live events are the stored ones');
      } finally {
        client.close();
      }
    });

    it('stops at a failing cell, with its traceback on that cell', async () => {
      writeNotebook(workdir, 'fails.ipynb', FAILING_CELLS);
      const [job] = await submit('name: fails\nnotebook: fails.ipynb\n');
      const run = await ended(job!.id);
      await checkFailingRun(run, await cellEvents(job!.id));
    });

    it('runs only the cells asked for: some of them, or from one down', async () => {
      writeNotebook(workdir, 'pick.ipynb', [{ source: 'print("zero")' }, { source: '# notes', markdown: true }, { source: 'print("two")' }, { source: 'print("three")' }]);
      const [some] = await submit('name: some\nnotebook: pick.ipynb\nenv: { DROVER_NOTEBOOK_CELLS: "0,3" }\n');
      const [down] = await submit('name: down\nnotebook: pick.ipynb\nenv: { DROVER_NOTEBOOK_CELLS: "2-" }\n');
      assert.equal((await ended(some!.id)).state, 'succeeded');
      assert.equal((await ended(down!.id)).state, 'succeeded');
      assert.deepEqual(outline(await cellEvents(some!.id)), ['start 0', 'finish 0 ok', 'start 3', 'finish 3 ok']);
      assert.deepEqual(outline(await cellEvents(down!.id)), ['start 2', 'finish 2 ok', 'start 3', 'finish 3 ok']);
    });

    it('streams an output larger than a log read (a big image) whole', async () => {
      writeNotebook(workdir, 'big.ipynb', [{ source: 'from IPython.display import display\ndisplay({"image/png": "A" * 3_000_000}, raw=True)\nprint("after")' }]);
      const [job] = await submit('name: big\nnotebook: big.ipynb\n');
      assert.equal((await ended(job!.id)).state, 'succeeded');
      const events = await cellEvents(job!.id);
      const image = outputsOf(events, 0).find((output) => output.output_type === 'display_data');
      assert.equal((image?.data?.['image/png'] as string | undefined)?.length, 3_000_000);
      assert.equal(streamText(events, 0, 'stdout'), 'after\n');
    });

    it("reports a cleared output and a display updated in place (progress bars) as the cell's outputs anew", async () => {
      const source = 'from IPython.display import display, clear_output\nh = display("step 0", display_id=True)\nh.update("step 1")\nprint("a")\nclear_output(wait=True)\nprint("b")';
      writeNotebook(workdir, 'progress.ipynb', [{ source }]);
      const [job] = await submit('name: progress\nnotebook: progress.ipynb\n');
      assert.equal((await ended(job!.id)).state, 'succeeded');
      const shown = (await cellEvents(job!.id)).flatMap((event) => {
        if (event.event === 'output') return [`+ ${event.output.text ?? JSON.stringify(event.output.data)}`];
        if (event.event === 'outputs') return [`= ${event.outputs.map((output) => output.text ?? JSON.stringify(output.data)).join(' ')}`];
        return [];
      });
      assert.deepEqual(shown, ['+ {"text/plain":"\'step 0\'"}', '= {"text/plain":"\'step 1\'"}', '+ a\n', '= b\n']);
    });

    it('sweeps a notebook like a script: each run gets its own parameters', async () => {
      writeAnalysisNotebook(workdir);
      const jobs = await submit('name: sweep\nnotebook: analysis.ipynb\nsweep: { parameters: { name: [a, b] } }\n');
      const printed = [];
      for (const job of jobs) {
        const run = await ended(job.id);
        assert.equal(run.state, 'succeeded', run.reason);
        printed.push(streamText(await cellEvents(job.id), 2, 'stdout').split('\n')[0]);
      }
      assert.deepEqual(printed.sort(), ['lr is 0.1 for a', 'lr is 0.1 for b']);
    });

    it('drover run --wait NOTEBOOK prints per-cell progress and the output; drover show names the executed notebook', async () => {
      writeAnalysisNotebook(workdir);
      const ran = await harness.cli(['run', '--wait', '-p', 'lr=0.01', 'analysis.ipynb'], workdir);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /lr is 0\.01 for default\n::metric step=1 loss=0\.5\n/);
      const progress = ran.stderr.split('\n').filter((line) => /cell \d/.test(line));
      assert.deepEqual(
        progress.map((line) => line.replace(/ in \d+s$/, '')),
        ['[analysis] cell 1 running', '[analysis] cell 1 done', '[analysis] cell 1 (injected parameters) running', '[analysis] cell 1 (injected parameters) done', '[analysis] cell 2 running', '[analysis] cell 2 done', '[analysis] cell 3 running', '[analysis] cell 3 done'],
      );
      const [run] = await rpc('drover/jobs', { limit: 1 });
      const shown = await harness.cli(['show', String(run!.id)]);
      assert.equal(shown.code, 0, shown.stderr);
      const executed = /executed\s+(\S+)/.exec(shown.stdout)?.[1];
      assert.ok(executed && executed.endsWith('executed.ipynb') && existsSync(executed), shown.stdout);

      writeNotebook(workdir, 'fails.ipynb', FAILING_CELLS);
      // Options may follow a notebook.
      const failed = await harness.cli(['run', 'fails.ipynb', '--wait'], workdir);
      assert.equal(failed.code, 1);
      assert.match(failed.stderr, /\[fails\] cell 1 failed/);
    });

    it('says what to install when the Python it runs under has no Jupyter', () => {
      const notebook = writeNotebook(workdir, 'x.ipynb', [{ source: '1' }]);
      // -S leaves out site-packages, as a Python without Jupyter would be.
      const driver = join(ROOT, 'runner/python/drover_notebook.py');
      const result = spawnSync('/usr/bin/python3', ['-S', driver, notebook, '--events', join(workdir, 'e'), '--output', join(workdir, 'o')], { encoding: 'utf8' });
      assert.equal(result.status, 2);
      assert.match(result.stderr, /needs Jupyter's nbclient and ipykernel for \/usr\/bin\/python3 on .*python3-nbclient python3-ipykernel.*pip install nbclient ipykernel/);
    });
  });

  describe('on an SSH host', () => {
    let testbed: SshTestbed;

    before(async function () {
      skipUnlessAvailable(this, 'the SSH test hosts', SshTestbed.unavailable());
      testbed = await SshTestbed.start();
    });

    after(async () => testbed?.dispose());

    beforeEach(async () => {
      harness = new DaemonHarness({ env: { DROVER_SSH_CONFIG: testbed.sshConfigPath, DROVER_HOST_PROBE_MS: '1000' } });
      workdir = mkdtempSync(join(tmpdir(), 'drover-notebook-ssh-'));
      const added = await harness.cli(['hosts', 'add', 'h1']);
      assert.equal(added.code, 0, `${added.stdout}${added.stderr}`);
    });

    afterEach(async () => {
      await harness?.dispose();
      rmSync(workdir, { recursive: true, force: true });
    });

    it('runs the notebook on the host, shipping the driver, and brings back events, metrics and the executed notebook', async () => {
      writeAnalysisNotebook(workdir);
      writeNotebook(workdir, 'fails.ipynb', FAILING_CELLS);
      const [good] = await submit('name: analysis\nnotebook: analysis.ipynb\nparams: { lr: 0.01 }\n', 'h1');
      const [bad] = await submit('name: fails\nnotebook: fails.ipynb\n', 'h1');
      const run = await ended(good!.id);
      assert.equal(run.host, 'h1');
      const events = await cellEvents(good!.id);
      assert.equal((events[0] as Extract<CellEvent, { event: 'begin' }>).host, 'h1', 'the kernel ran on the host');
      await checkAnalysisRun(run, events);
      await checkFailingRun(await ended(bad!.id), await cellEvents(bad!.id));
    });
  });
});
