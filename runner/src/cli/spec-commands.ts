import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYamlValue } from 'yaml';
import {
  analyzeSpec,
  expandSpec,
  ExpansionError,
  formatDiagnostic,
  formatSize,
  hasErrors,
  SPEC_FILE_PATTERN,
  type ParamValue,
  type RunPlan,
  type SpecAnalysis,
  type SpecDiagnostic,
} from '../../../common/spec';
import { CliError, EXIT, formatTable, plural, type CommandOutput } from './output';

const SKIPPED_DIRECTORIES = new Set(['node_modules', '.git', 'out', 'dist', '__pycache__']);

/** Spec files named on the command line; a directory stands for the specs under it. */
export function specFilesFrom(paths: string[]): string[] {
  const files: string[] = [];
  const visit = (path: string, named: boolean): void => {
    let stats;
    try {
      stats = statSync(path);
    } catch {
      throw new CliError(`cannot read '${path}': no such file or directory`, EXIT.noInput);
    }
    if (!stats.isDirectory()) {
      if (named || SPEC_FILE_PATTERN.test(path)) files.push(path);
      return;
    }
    for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.isDirectory() && SKIPPED_DIRECTORIES.has(entry.name)) continue;
      if (entry.isDirectory() || SPEC_FILE_PATTERN.test(entry.name)) visit(join(path, entry.name), false);
    }
  };
  for (const path of paths) visit(path, true);
  return files;
}

function readSpec(file: string): SpecAnalysis {
  return analyzeSpec(readSpecText(file), file);
}

/** Why a file could not be read, in words: the usual causes by name, others by their code. */
const READ_FAILURES: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', EPERM: 'permission denied', EISDIR: 'it is a folder, not a file' };

/** A spec file's text; a file that cannot be read is a CliError that says why (exit 3). */
export function readSpecText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read '${file}': ${(code && READ_FAILURES[code]) ?? code ?? String(error)}`, EXIT.noInput);
  }
}

function diagnosticJson(analysis: SpecAnalysis, diagnostic: SpecDiagnostic) {
  const start = analysis.lines.position(diagnostic.range.start);
  const end = analysis.lines.position(diagnostic.range.end);
  return {
    severity: diagnostic.severity,
    code: diagnostic.code,
    message: diagnostic.message,
    line: start.line + 1,
    column: start.character + 1,
    endLine: end.line + 1,
    endColumn: end.character + 1,
    ...(diagnostic.suggestion !== undefined && { suggestion: diagnostic.suggestion }),
  };
}

export function validateCommand(paths: string[], options: { json: boolean }, out: CommandOutput): number {
  if (paths.length === 0) throw new CliError('name at least one spec file or directory', EXIT.usage);
  const files = specFilesFrom(paths);
  if (files.length === 0) throw new CliError(`no spec files (*.drover.yaml, *.drover.yml, drover.yaml) under ${paths.join(', ')}`, EXIT.noInput);
  let errors = 0;
  let warnings = 0;
  const report = files.map((file) => {
    const analysis = readSpec(file);
    for (const diagnostic of analysis.diagnostics) {
      if (diagnostic.severity === 'error') errors++;
      else if (diagnostic.severity === 'warning') warnings++;
      if (!options.json) out.stdout(formatDiagnostic(file, analysis, diagnostic));
    }
    return { file, diagnostics: analysis.diagnostics.map((diagnostic) => diagnosticJson(analysis, diagnostic)) };
  });
  if (options.json) out.stdout(JSON.stringify(report, null, 2));
  else {
    const checked = `${plural(files.length, 'spec')} checked`;
    const found = errors + warnings === 0 ? 'no problems' : `${plural(errors, 'error')}, ${plural(warnings, 'warning')}`;
    (errors > 0 ? out.stderr : out.stdout)(`${checked}: ${found}`);
  }
  return errors > 0 ? EXIT.invalid : EXIT.ok;
}

export function planCommand(paths: string[], options: { json: boolean; params: string[]; seed: string | undefined }, out: CommandOutput): number {
  if (paths.length !== 1) throw new CliError('name exactly one spec file', EXIT.usage);
  const file = paths[0]!;
  const analysis = readSpec(file);
  if (hasErrors(analysis.diagnostics) || !analysis.model) {
    for (const diagnostic of analysis.diagnostics) out.stderr(formatDiagnostic(file, analysis, diagnostic));
    return EXIT.invalid;
  }
  let seed: number | undefined;
  if (options.seed !== undefined) {
    seed = Number(options.seed);
    if (!Number.isInteger(seed)) throw new CliError(`--seed takes a whole number, not '${options.seed}'`, EXIT.usage);
  }
  let plans: RunPlan[];
  try {
    plans = expandSpec(analysis.model, { overrides: parseOverrides(options.params), ...(seed !== undefined && { seed }) });
  } catch (error) {
    if (error instanceof ExpansionError) throw new CliError(error.message);
    throw error;
  }
  if (options.json) {
    out.stdout(JSON.stringify({ name: analysis.model.name, kind: analysis.model.kind, runs: plans }, null, 2));
    return EXIT.ok;
  }
  out.stdout(`${analysis.model.name}: ${plural(plans.length, 'run')}`);
  const rows = plans.map((plan) => [plan.key, describeResources(plan), plan.needs.join(',') || '-', plan.command ?? `notebook ${plan.notebook}`]);
  out.stdout(formatTable(['RUN', 'RESOURCES', 'NEEDS', 'COMMAND'], rows));
  return EXIT.ok;
}

/** `-p lr=0.1` → { lr: 0.1 }: values read as YAML scalars, so numbers stay numbers. */
export function parseOverrides(pairs: string[]): Record<string, ParamValue> {
  const overrides: Record<string, ParamValue> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new CliError(`-p takes NAME=VALUE, not '${pair}'`, EXIT.usage);
    const raw = pair.slice(equals + 1);
    let value: unknown;
    try {
      value = parseYamlValue(raw);
    } catch {
      value = raw;
    }
    overrides[pair.slice(0, equals)] = typeof value === 'number' || typeof value === 'boolean' ? value : raw;
  }
  return overrides;
}

function describeResources(plan: RunPlan): string {
  const { gpus, cpus, memoryBytes } = plan.resources;
  const parts: string[] = [];
  if (gpus.count > 0) parts.push(`${gpus.type ? `${gpus.type}:` : ''}${gpus.count} gpu${gpus.memoryBytes ? ` ≥${formatSize(gpus.memoryBytes)}` : ''}`);
  if (cpus !== undefined) parts.push(`${cpus} cpu`);
  if (memoryBytes !== undefined) parts.push(formatSize(memoryBytes));
  return parts.join(', ') || '-';
}
