import * as path from 'node:path';
import { stringify } from 'yaml';
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

