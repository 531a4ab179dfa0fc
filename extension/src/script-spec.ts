import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { shellWord } from '../../common/spec';

export type ScriptKind = 'python' | 'shell' | 'notebook';

/** What "Run on cluster" can run: a script, a notebook or a spec; undefined for anything else. */
export function runnableKind(fileName: string): ScriptKind | 'spec' | undefined {
  const base = path.basename(fileName);
  if (/^drover\.ya?ml$|\.drover\.ya?ml$/.test(base)) return 'spec';
  if (base.endsWith('.py')) return 'python';
  if (base.endsWith('.sh')) return 'shell';
  if (base.endsWith('.ipynb')) return 'notebook';
  return undefined;
}

export interface ScriptRun {
  /** The script's absolute path. */
  file: string;
  /** The folder it runs in (the workspace folder): absolute. */
  workdir: string;
  gpus: number;
  /** The interpreter for `.py` files (`python3` where `python` is missing, as on Debian). */
  python: string;
  /** The run's name, when `file` is a snapshot of the script rather than the script itself. */
  name?: string;
  /** Environment variables of the run (a notebook's cell selection). */
  env?: Record<string, string>;
}

/** The one-job spec that runs a script, named after the file; the daemon records the rest. */
export function scriptSpec(run: ScriptRun): string {
  const kind = runnableKind(run.file);
  if (kind === undefined || kind === 'spec') throw new Error(`${path.basename(run.file)} is not a script Drover runs (.py, .sh or .ipynb)`);
  const relative = path.relative(run.workdir, run.file);
  // A file outside the workdir is named by its full path rather than by '../' steps.
  const target = (relative.startsWith('..') || path.isAbsolute(relative) ? run.file : relative).split(path.sep).join('/');
  const spec: Record<string, unknown> = { name: run.name ?? (path.basename(run.file).replace(/\.(py|sh|ipynb)$/, '') || 'run') };
  if (kind === 'notebook') spec['notebook'] = target;
  else spec['run'] = `${kind === 'python' ? run.python : 'bash'} ${shellWord(target)}`;
  spec['workdir'] = run.workdir;
  spec['resources'] = { gpus: run.gpus };
  if (run.env && Object.keys(run.env).length > 0) spec['env'] = run.env;
  return stringify(spec);
}


/** The keys of a one-job spec that say how and where, not what: what a notebook run borrows from a spec. */
const SETTINGS_KEYS = ['resources', 'placement', 'env', 'setup', 'timeout', 'retries', 'params', 'sweep', 'workdir'] as const;

/**
 * A notebook run with a spec's settings (resources, placement, environment, setup, parameters,
 * sweep): the spec's own command or notebook is replaced by this notebook. Only a one-job spec
 * has settings to borrow; a workflow's are per job, so it is refused with a reason.
 */
export function notebookSpecWithSettings(specText: string, specFile: string, run: { file: string; name?: string; env?: Record<string, string> }): string {
  const spec = parse(specText) as Record<string, unknown> | null;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new Error(`${path.basename(specFile)} is not a spec (a YAML mapping)`);
  if ('jobs' in spec) throw new Error(`${path.basename(specFile)} is a workflow: its settings are per job, so pick a one-job spec (or a host)`);
  const folder = path.dirname(specFile);
  const settings: Record<string, unknown> = { name: run.name ?? (path.basename(run.file).replace(/\.ipynb$/, '') || 'notebook') };
  for (const key of SETTINGS_KEYS) if (spec[key] !== undefined) settings[key] = spec[key];
  // The spec's workdir is relative to the spec's folder; the notebook is named from there.
  const workdir = path.resolve(folder, typeof spec['workdir'] === 'string' ? spec['workdir'] : '.');
  settings['workdir'] = workdir;
  const relative = path.relative(workdir, run.file);
  settings['notebook'] = (relative.startsWith('..') || path.isAbsolute(relative) ? run.file : relative).split(path.sep).join('/');
  if (run.env && Object.keys(run.env).length) settings['env'] = { ...(settings['env'] as Record<string, string> | undefined), ...run.env };
  return stringify(settings);
}
