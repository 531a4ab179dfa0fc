import type { JobView } from '../../common/protocol';
import { formatElapsed } from '../../common/spec';
import { runColor } from './colors';
import { h } from './dom';
import { runLabel } from './runs-table';

/**
 * Which run held which GPU when: a lane per host GPU, a bar per run that was placed on it
 * (running ones reach the present). Runs without a GPU are not shown.
 */
export function renderTimeline(jobs: Iterable<JobView>, now: number): HTMLElement {
  const lanes = new Map<string, JobView[]>();
  let start = Infinity;
  let end = -Infinity;
  for (const job of jobs) {
    if (!job.host || !job.gpus?.length || job.startedAt === undefined) continue;
    for (const gpu of job.gpus) {
      const lane = `${job.host} · GPU ${gpu}`;
      lanes.set(lane, [...(lanes.get(lane) ?? []), job]);
    }
    start = Math.min(start, job.startedAt);
    end = Math.max(end, job.endedAt ?? now);
  }
  if (!lanes.size) return h('p', { className: 'empty' }, 'No run of these held a GPU yet.');
  const span = Math.max(1, end - start);
  const rows = [...lanes.entries()]
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([lane, held]) =>
      h(
        'div',
        { className: 'lane' },
        h('span', { className: 'lane-name' }, lane),
        h(
          'div',
          { className: 'lane-track' },
          ...held.map((job) => {
            const bar = h('span', { className: `bar state-${job.state}`, title: `${runLabel(job)}: ${job.state}, ${formatElapsed((job.endedAt ?? now) - job.startedAt!)}`, dataset: { run: String(job.id) } }, `#${job.id}`);
            bar.style.left = `${(((job.startedAt! - start) / span) * 100).toFixed(3)}%`;
            bar.style.width = `${Math.max(0.5, (((job.endedAt ?? now) - job.startedAt!) / span) * 100).toFixed(3)}%`;
            bar.style.background = runColor(job.id);
            return bar;
          }),
        ),
      ),
    );
  return h(
    'div',
    { className: 'timeline' },
    ...rows,
    h('div', { className: 'lane axis' }, h('span', { className: 'lane-name' }), h('div', { className: 'lane-track' }, h('span', { className: 'from' }, new Date(start).toLocaleString()), h('span', { className: 'to' }, new Date(end).toLocaleString()))),
  );
}
