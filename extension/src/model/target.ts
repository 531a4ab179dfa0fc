/**
 * Where "Run on cluster" sends a file: a host (or any, the scheduler's choice) and, for a
 * script, how many GPUs; for a spec, `useSpec` keeps the spec's own placement and resources.
 */
export interface RunTarget {
  host?: string;
  gpus?: number;
  useSpec?: boolean;
}

/** Whether a command argument is a target (and not a Uri or a list of them from a menu). */
export function isRunTarget(value: unknown): value is RunTarget {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  if (keys.length === 0 || keys.some((key) => key !== 'host' && key !== 'gpus' && key !== 'useSpec')) return false;
  const target = value as RunTarget;
  return (target.host === undefined || typeof target.host === 'string') && (target.gpus === undefined || (Number.isInteger(target.gpus) && target.gpus >= 0));
}

/** `drover.defaultTarget` as written: `any`, `HOST`, `any:2`, `HOST:1`; undefined when malformed. */
export function parseTarget(text: string): RunTarget | undefined {
  const match = /^([^\s:]+)(?::(\d+))?$/.exec(text.trim());
  if (!match) return undefined;
  return { ...(match[1] !== 'any' && { host: match[1]! }), ...(match[2] !== undefined && { gpus: Number(match[2]) }) };
}

export function describeTarget(target: RunTarget, forSpec: boolean): string {
  if (forSpec) return target.host ? `on ${target.host}, with the spec's resources` : "the spec's own settings";
  const where = target.host ? `on ${target.host}` : 'on any host';
  const gpus = target.gpus ?? 0;
  return `${where}, ${gpus === 0 ? 'no GPU' : `${gpus} GPU${gpus === 1 ? '' : 's'}`}`;
}
