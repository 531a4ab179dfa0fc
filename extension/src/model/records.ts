import type { JobDetail, MetricSeries } from '../../../common/protocol';
import { describeOutcome, formatMetricValue, formatResources, runLabel } from './format';

const NO_DASHBOARD = '> The run dashboard is not built yet: this is the run\'s record, read-only.';

/** A run's record as a markdown document: what it was, how it ended, and what reproduces it. */
export function recordMarkdown(job: JobDetail, metrics: readonly MetricSeries[]): string {
  const lines = [`# Run ${runLabel(job)}`, '', NO_DASHBOARD, ''];
  const row = (name: string, value: string | undefined) => {
    if (value !== undefined && value !== '') lines.push(`| ${name} | ${cell(value)} |`);
  };
  lines.push('| | |', '|---|---|');
  row('state', job.state === 'queued' || job.state === 'running' ? job.state : describeOutcome(job));
  row('why', job.reason);
  row('command', job.command ?? (job.notebook !== undefined ? `notebook ${job.notebook}` : undefined));
  row('resources', formatResources(job.resources));
  row('host', job.host !== undefined ? `${job.host}${job.gpus?.length ? ` (GPU ${job.gpus.join(', ')})` : ''}` : undefined);
  row('priority', String(job.priority));
  row('attempts', String(job.attempts));
  row('created', new Date(job.createdAt).toISOString());
  row('started', job.startedAt !== undefined ? new Date(job.startedAt).toISOString() : undefined);
  row('ended', job.endedAt !== undefined ? new Date(job.endedAt).toISOString() : undefined);
  row('spec', job.record.specPath);
  row('workdir', job.record.workdir);
  if (job.record.targetHost !== undefined) row('pinned to host', job.record.targetHost);
  if (job.record.git) row('git', `${job.record.git.commit}${job.record.git.branch ? ` on ${job.record.git.branch}` : ''}${job.record.git.dirty ? ' (uncommitted changes)' : ''}`);
  if (job.record.host) row('machine', `${job.record.host.name}, ${job.record.host.os}${job.record.host.gpuModels.length ? `, ${job.record.host.gpuModels.join(', ')}` : ''}${job.record.host.driverVersion ? `, driver ${job.record.host.driverVersion}` : ''}`);
  if (Object.keys(job.params).length) {
    lines.push('', '## Parameters', '', '| name | value |', '|---|---|');
    for (const [name, value] of Object.entries(job.params)) lines.push(`| ${cell(name)} | ${cell(String(value))} |`);
  }
  if (metrics.length) {
    lines.push('', '## Metrics (last value)', '', '| name | value | step | points |', '|---|---|---|---|');
    for (const series of metrics) {
      const last = series.points.at(-1);
      if (last) lines.push(`| ${cell(series.name)} | ${formatMetricValue(last.value)} | ${last.step ?? ''} | ${series.points.length} |`);
    }
  }
  if (job.attemptList.length) {
    lines.push('', '## Attempts', '', '| # | outcome | host | GPUs | exit | log |', '|---|---|---|---|---|---|');
    for (const attempt of job.attemptList) {
      lines.push(`| ${attempt.number} | ${attempt.outcome} | ${cell(attempt.host)} | ${attempt.gpus.join(', ')} | ${attempt.signal ?? attempt.exitCode ?? ''} | ${cell(attempt.logPath)} |`);
    }
  }
  lines.push('', '## Spec as submitted', '', fence(job.record.specText, 'yaml'));
  if (Object.keys(job.record.overrides).length) lines.push('', '## Overrides', '', fence(JSON.stringify(job.record.overrides, null, 2), 'json'));
  lines.push('', '## Full record (JSON)', '', fence(JSON.stringify(job, null, 2), 'json'), '');
  return lines.join('\n');
}

/** Runs side by side: parameters, then the last value of each metric; a blank where a run has none. */
export function compareMarkdown(runs: readonly { job: JobDetail; metrics: readonly MetricSeries[] }[]): string {
  const lines = [`# Compare runs ${runs.map((run) => run.job.id).join(', ')}`, '', '> The comparison dashboard is not built yet: this is a read-only table of the runs\' records.', ''];
  lines.push(`| | ${runs.map((run) => cell(runLabel(run.job))).join(' | ')} |`, `|---|${runs.map(() => '---').join('|')}|`);
  const row = (name: string, values: (string | undefined)[]) => lines.push(`| ${name} | ${values.map((value) => cell(value ?? '')).join(' | ')} |`);
  row('**state**', runs.map((run) => describeOutcome(run.job)));
  row('**host**', runs.map((run) => run.job.host));
  row('**git**', runs.map((run) => (run.job.record.git ? `${run.job.record.git.commit.slice(0, 10)}${run.job.record.git.dirty ? '+dirty' : ''}` : undefined)));
  const params = unionOf(runs.map((run) => Object.keys(run.job.params)));
  for (const name of params) row(`param \`${name}\``, runs.map((run) => (name in run.job.params ? String(run.job.params[name]) : undefined)));
  const metricNames = unionOf(runs.map((run) => run.metrics.map((series) => series.name)));
  for (const name of metricNames) {
    row(
      `metric \`${name}\``,
      runs.map((run) => {
        const last = run.metrics.find((series) => series.name === name)?.points.at(-1);
        return last ? formatMetricValue(last.value) : undefined;
      }),
    );
  }
  lines.push('');
  return lines.join('\n');
}

function unionOf(lists: string[][]): string[] {
  const seen = new Set<string>();
  for (const list of lists) for (const name of list) seen.add(name);
  return [...seen];
}

/** A table cell: pipes and line ends would break the row. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A code fence longer than any run of backticks inside. */
function fence(text: string, language: string): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((match) => match[0].length));
  const marks = '`'.repeat(longest + 1);
  return `${marks}${language}\n${text.replace(/\n$/, '')}\n${marks}`;
}
