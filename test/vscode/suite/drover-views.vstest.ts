import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { JobView, RenderReport, SubmitResult } from '../../../common/protocol';
import type { DroverApi } from '../../../extension/src/extension';
import { droverExtension, eventually, workspaceFile } from './helpers';

/** A tree row as a person reads it. */
interface Row {
  label: string;
  description: string;
  tooltip: string;
  contextValue: string;
}

type Tree = DroverApi['test']['trees'][keyof DroverApi['test']['trees']];

function rowOf(tree: Tree, node: unknown): Row {
  const item = (tree as vscode.TreeDataProvider<unknown>).getTreeItem(node) as vscode.TreeItem;
  const text = (value: unknown) => (typeof value === 'string' ? value : value && typeof value === 'object' && 'value' in value ? String(value.value) : typeof value === 'object' && value && 'label' in value ? String(value.label) : '');
  return { label: text(item.label), description: text(item.description), tooltip: text(item.tooltip), contextValue: item.contextValue ?? '' };
}

/** Every row of a tree, depth first (the way it renders, expanded). */
async function rows(tree: Tree): Promise<Row[]> {
  const provider = tree as vscode.TreeDataProvider<unknown>;
  const out: Row[] = [];
  const walk = async (node: unknown) => {
    for (const child of (await provider.getChildren(node)) ?? []) {
      out.push(rowOf(tree, child));
      await walk(child);
    }
  };
  await walk(undefined);
  return out;
}

/** The row of run `id` in a tree (labels start with the run's id). */
async function runRow(tree: Tree, id: number): Promise<Row | undefined> {
  return (await rows(tree)).find((row) => row.label.startsWith(`${id} `));
}

describe('Drover views, commands and logs in a real VS Code', function () {
  this.timeout(90_000);
  let api: DroverApi;
  const started: number[] = [];

  before(async () => {
    api = (await droverExtension().activate()) as DroverApi;
  });

  after(async () => {
    // Leave nothing running for the next suite (the runner stops the daemon afterwards).
    if (started.length) await vscode.commands.executeCommand('drover.cancelRun', started);
  });

  it('contributes every command it registers, under the Drover category', async () => {
    const contributed: { command: string; category?: string }[] = droverExtension().packageJSON.contributes.commands;
    // drover.X are the extension's own; drover.VIEW.X are what VS Code makes for each view.
    const registered = (await vscode.commands.getCommands(true)).filter((command) => /^drover\.[A-Za-z]+$/.test(command));
    const declared = new Set(contributed.map((entry) => entry.command));
    assert.deepEqual(
      registered.filter((command) => !declared.has(command)),
      [],
    );
    assert.ok(contributed.every((entry) => entry.category === 'Drover'));
    for (const needed of ['drover.submitSpec', 'drover.runCurrentFile', 'drover.cancelRun', 'drover.showLogs', 'drover.openDashboard', 'drover.addHost', 'drover.startDaemon', 'drover.stopDaemon', 'drover.whyPending']) {
      assert.ok(declared.has(needed), `${needed} is contributed`);
    }
  });

  it('shows "daemon stopped" until the daemon is started, then the counts', async () => {
    // Nothing started the daemon in this fresh DROVER_HOME yet.
    await eventually('the status bar to say the daemon is stopped', () => api.test.statusBarText() === 'Drover: daemon stopped');
    const queue = await rows(api.test.trees.queue);
    assert.equal(queue.length, 1);
    assert.equal(queue[0]!.label, 'Daemon not running: click to start it');
    await vscode.commands.executeCommand('drover.startDaemon');
    await eventually('the status bar to show the counts', () => api.test.statusBarText() === 'Drover: 0 running · 0 queued · 0/2 GPUs' || undefined);
  });

  it('lists the fixture GPUs under the local host in Clusters', async () => {
    const clusters = await eventually('hosts in the Clusters view', async () => {
      const found = await rows(api.test.trees.clusters);
      return found.filter((row) => row.label.startsWith('GPU ')).length === 2 && found;
    });
    const [host, gpu0, gpu1] = clusters;
    assert.equal(host!.contextValue, 'host.local');
    assert.match(host!.description, /this machine · 0\/2 GPUs in use/);
    assert.equal(gpu0!.label, 'GPU 0: A100-SXM4-40GB');
    assert.match(gpu0!.description, /^17\.0\/40 GiB · 37% · other user \(pid 4242\)$/);
    assert.equal(gpu1!.label, 'GPU 1: A100-SXM4-40GB');
    assert.match(gpu1!.description, /^0\/40 GiB · 0% · free$/);
  });

  it('runs a script on the cluster: it shows in Runs with its key metric, and its logs in a terminal', async () => {
    const result = await vscode.commands.executeCommand<SubmitResult>('drover.runOnCluster', workspaceFile('train.py'), { gpus: 0 });
    assert.ok(result, 'the command returned the submission');
    const [job] = result.jobs;
    started.push(job!.id);
    assert.equal(job!.specName, 'train');
    assert.equal(job!.command, 'python3 train.py');
    const row = await eventually('the run to succeed in the Runs view with its key metric', async () => {
      const found = await runRow(api.test.trees.runs, job!.id);
      return found && /^succeeded · loss 0\.\d+/.test(found.description) && found;
    });
    assert.equal(row.contextValue, 'run.final');
    await vscode.commands.executeCommand('drover.showLogs', job!.id);
    const output = await eventually('the terminal to show the whole log and the outcome', () => {
      const text = api.test.terminalOutput(job!.id);
      return text?.includes('succeeded') && text;
    });
    assert.match(output, /::metric step=1 loss=0\.\d+\r\n::metric step=2 loss=0\.\d+\r\n::metric step=3 loss=0\.\d+\r\n/);
    assert.match(output, /── run \d+ train succeeded after \d+s ──/);
    assert.equal(output.match(/step=3/g)?.length, 1, 'each line once');
  });

  it('follows a long run in the Queue, says why another waits, and cancels both', async () => {
    const script = workspaceFile('long.sh');
    fs.writeFileSync(script.fsPath, 'for i in $(seq 1 600); do echo "step $i"; printf "progress %d%%\\r" $i; sleep 0.1; done\n');
    const long = (await vscode.commands.executeCommand<SubmitResult>('drover.runOnCluster', script, { gpus: 1 }))!.jobs[0]!;
    started.push(long.id);
    const running = await eventually('the long run to run, in the Queue', async () => {
      const found = await runRow(api.test.trees.queue, long.id);
      return found?.contextValue === 'run.running' && found;
    });
    assert.match(running.description, /^running on \S+ GPU 1 · \d+s/);
    assert.equal((await runRow(api.test.trees.runs, long.id))?.contextValue, 'run.running');
    await eventually('the status bar to count it', () => api.test.statusBarText() === 'Drover: 1 running · 0 queued · 1/2 GPUs' || undefined);

    // Two GPUs can't be had while the long run holds the only free one.
    const waiting = (await vscode.commands.executeCommand<SubmitResult>('drover.runOnCluster', workspaceFile('train.py'), { gpus: 2 }))!.jobs[0]!;
    started.push(waiting.id);
    const queued = await eventually('the waiting run in the Queue, with why', async () => {
      const found = await runRow(api.test.trees.queue, waiting.id);
      return found?.contextValue === 'run.queued' && /^Pending: /.test(found.tooltip) && !/waiting for the scheduler/.test(found.tooltip) && found;
    });
    assert.match(queued.description, /^#1 · 2 GPUs · waiting \d+s$/);
    const why = await vscode.commands.executeCommand<string>('drover.whyPending', waiting.id);
    assert.match(why ?? '', new RegExp(`^Run ${waiting.id} train is pending: .+`));
    assert.deepEqual(await vscode.commands.executeCommand('drover.raisePriority', waiting.id), [waiting.id]);
    await eventually('the raised priority in the Queue', async () => (await runRow(api.test.trees.queue, waiting.id))?.description.endsWith('· priority 1'));

    await vscode.commands.executeCommand('drover.showLogs', long.id);
    await eventually('the long run streaming into its terminal', () => /step 3\r\nprogress 3%\r/.test(api.test.terminalOutput(long.id) ?? ''));

    assert.deepEqual(await vscode.commands.executeCommand('drover.cancelRun', [long.id, waiting.id]), [long.id, waiting.id]);
    for (const job of [long, waiting]) {
      await eventually(`run ${job.id} cancelled in Runs`, async () => /^cancelled/.test((await runRow(api.test.trees.runs, job.id))?.description ?? ''));
      assert.equal(await runRow(api.test.trees.queue, job.id), undefined);
    }
    const output = await eventually('the outcome in the terminal', () => {
      const text = api.test.terminalOutput(long.id);
      return text?.includes('── run') && text.includes('cancelled') && text;
    });
    const lines = output.split('\r\n').filter((line) => /^step \d+$/.test(line.replace(/^.*\r/, '')));
    assert.deepEqual(
      lines.map((line) => Number(line.replace(/^.*\r/, '').slice(5))),
      lines.map((_, index) => index + 1),
      'every step once, in order',
    );
    await eventually('the status bar back to idle', () => api.test.statusBarText() === 'Drover: 0 running · 0 queued · 0/2 GPUs' || undefined);
  });

  it('submits a sweep spec with its own settings and groups its runs in Runs', async () => {
    const result = await vscode.commands.executeCommand<SubmitResult>('drover.submitSpec', workspaceFile('sweep.drover.yaml'));
    assert.ok(result && result.jobs.length === 4, `submitted ${result?.jobs.length} runs`);
    started.push(...result.jobs.map((job: JobView) => job.id));
    let seen: Row[] = [];
    const all = await eventually('all four sweep runs to succeed', async () => {
      const found = await rows(api.test.trees.runs);
      const group = found.find((row) => row.label === 'lr-sweep');
      const runs = found.filter((row) => result.jobs.some((job) => row.label.startsWith(`${job.id} `)));
      seen = runs;
      return group && runs.length === 4 && runs.every((row) => row.description.startsWith('succeeded · loss')) && { group, runs };
    }, 60_000).catch((error: Error) => {
      throw new Error(`${error.message}; rows: ${JSON.stringify(seen)}`);
    });
    assert.match(all.group.description, /^4 runs/);
  });

  it('opens the dashboards: the experiment, a run, a comparison and the GPU timeline, each drawing what the daemon holds', async () => {
    const sweep = started.slice(-4);
    const rendered = (key: string | undefined, what: string, check: (report: RenderReport) => boolean) =>
      eventually(what, () => {
        const report = key === undefined ? undefined : api.test.dashboards.lastReport(key);
        return report && check(report) && report;
      }, 30_000);
    const experiment = await vscode.commands.executeCommand<string>('drover.openExperiment', { kind: 'group', name: 'lr-sweep' });
    // The page reports what it drew once the snapshot reached it: the four runs, their loss curves.
    const report = await rendered(experiment, 'the experiment dashboard to draw the sweep', (r) => r.runs === 4 && r.charts.includes('loss') && r.points > 0);
    assert.equal(report.rowsShown, 4);
    assert.deepEqual(report.target, { kind: 'experiment', specName: 'lr-sweep' });
    assert.equal(await vscode.commands.executeCommand('drover.openExperiment', 'lr-sweep'), experiment, 'opened again: the same panel, revealed');
    assert.equal(api.test.dashboards.openKeys().length, 1);
    const run = await vscode.commands.executeCommand<string>('drover.openDashboard', sweep[0]);
    await rendered(run, 'the run view to draw its loss', (r) => r.runs === 1 && r.charts.includes('loss') && r.points > 0);
    const compare = await vscode.commands.executeCommand<string>('drover.compareRuns', [sweep[1], sweep[2]]);
    const compared = await rendered(compare, 'the comparison to overlay both runs', (r) => r.runs === 2 && r.charts.includes('loss'));
    assert.deepEqual(compared.target, { kind: 'compare', jobIds: [sweep[1], sweep[2]].sort((a, b) => a! - b!) });
    const timeline = await vscode.commands.executeCommand<string>('drover.openGpuTimeline');
    await rendered(timeline, 'the GPU timeline', (r) => r.target.kind === 'gpus');
    // A run that reports as it goes: its view grows point by point. It runs from a git commit,
    // so its code can be compared with the working tree afterwards.
    const script = workspaceFile('live.sh');
    fs.writeFileSync(script.fsPath, 'for i in $(seq 1 30); do echo "::metric step=$i loss=0.$((99 - i))"; echo "line $i"; sleep 0.25; done\n');
    const folder = workspaceFile().fsPath;
    const git = (...args: string[]) => execFileSync('git', ['-C', folder, '-c', 'user.name=Drover Test', '-c', 'user.email=test@drover.invalid', ...args], { encoding: 'utf8' });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-q', '-m', 'the code the live run runs');
    const live = (await vscode.commands.executeCommand<SubmitResult>('drover.runOnCluster', script, { gpus: 0 }))!.jobs[0]!;
    started.push(live.id);
    const liveView = await vscode.commands.executeCommand<string>('drover.openDashboard', live.id);
    const seen = new Set<number>();
    await eventually('all 30 points drawn as they were reported', () => {
      const report = api.test.dashboards.lastReport(liveView!);
      if (report) seen.add(report.points);
      return report?.points === 30;
    }, 40_000);
    assert.ok([...seen].some((points) => points > 0 && points < 30), `the chart grew while the run went on (point counts seen: ${[...seen].join(', ')})`);
    fs.appendFileSync(workspaceFile('train.py').fsPath, '# changed after the run\n');
    const diff = await vscode.commands.executeCommand<vscode.TextEditor>('drover.openRunDiff', live.id);
    const diffText = diff!.document.getText();
    assert.equal(diff!.document.languageId, 'diff');
    assert.match(diffText, new RegExp(`^# Run ${live.id} .* ran commit ${git('rev-parse', 'HEAD').trim()} (\\(\\S+\\) )?in `, 'm'));
    assert.match(diffText, /^\+# changed after the run$/m);
    const record = await vscode.commands.executeCommand<vscode.TextEditor>('drover.openRecord', sweep[0]);
    assert.equal(JSON.parse(record!.document.getText()).id, sweep[0]);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await eventually('the panels closed', () => api.test.dashboards.openKeys().length === 0);
  });

  it('says so when the daemon stops, and shows the same runs once it is back', async () => {
    const before = (await rows(api.test.trees.runs)).length;
    assert.equal(await vscode.commands.executeCommand('drover.stopDaemon'), true);
    await eventually('the status bar to say the daemon stopped', () => api.test.statusBarText() === 'Drover: daemon stopped');
    for (const tree of Object.values(api.test.trees)) assert.deepEqual((await rows(tree)).map((row) => row.label), ['Daemon not running: click to start it']);
    await vscode.commands.executeCommand('drover.startDaemon');
    await eventually('the runs back in the Runs view', async () => (await rows(api.test.trees.runs)).length === before);
    // The restarted daemon lists the local host before its first probe has counted the GPUs.
    await eventually('the GPUs counted again', () => api.test.statusBarText() === 'Drover: 0 running · 0 queued · 0/2 GPUs' || undefined);
  });
});
