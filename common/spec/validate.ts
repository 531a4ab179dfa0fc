import type { SpecDiagnostic } from './diagnostics';
import { domainSize, sweepSize, SWEEP_SIZE_LIMIT, SWEEP_WARNING_SIZE } from './expand';
import type { Expression } from './expressions';
import { buildModel, type JobMemo, type JobSpec, type SpecModel } from './model';
import { specSchema } from './schema';
import { validateAgainstSchema, type EntryMemo } from './schema-validation';
import { closestMatch, didYouMean } from './suggest';
import { LineIndex, type SourceRange } from './text';
import { parseYamlSource, type YamlSource } from './yaml-source';

/** Everything known about one spec text: its YAML, its model (if it has one) and its problems. */
export interface SpecAnalysis {
  source: YamlSource;
  lines: LineIndex;
  model: SpecModel | undefined;
  diagnostics: SpecDiagnostic[];
}

/** File names Drover treats as specs. */
export const SPEC_FILE_PATTERN = /(^|[\\/])(drover\.ya?ml|[^\\/]+\.drover\.ya?ml)$/;

/** `train.drover.yaml` → `train`; a spec's name when it has no `name:`. */
export function defaultSpecName(fileName: string | undefined): string {
  const base = (fileName ?? 'spec').split(/[\\/]/).pop()!;
  return base.replace(/\.drover\.ya?ml$|\.ya?ml$/, '') || 'spec';
}

/** Parses and validates a spec. Never throws: broken input yields diagnostics. */
export function analyzeSpec(text: string, fileName?: string): SpecAnalysis {
  return analyzeSource(parseYamlSource(text), fileName);
}

/** Per-job work an incremental analysis has already done (see `IncrementalAnalyzer`). */
export interface AnalysisMemo extends EntryMemo, JobMemo {}

/** Validates a parsed spec; `memo` hands back per-job results instead of recomputing them. */
export function analyzeSource(source: YamlSource, fileName: string | undefined, memo?: AnalysisMemo): SpecAnalysis {
  const { text } = source;
  const lines = new LineIndex(text);
  const diagnostics = [...source.syntaxDiagnostics];
  const analysis: SpecAnalysis = { source, lines, model: undefined, diagnostics };
  const root = source.root;
  if (root === null || (root.kind === 'scalar' && root.value === null)) {
    diagnostics.push({ severity: 'error', code: 'nothing-to-run', message: 'the spec is empty: add `name:` and `run: <command>`, or a `jobs:` map for a workflow', range: { start: 0, end: 0 } });
    return analysis;
  }
  if (root.kind !== 'map') {
    diagnostics.push({ severity: 'error', code: 'not-a-mapping', message: `a spec is a YAML mapping of keys to values (such as 'run: python train.py'), not ${root.kind === 'seq' ? 'a list' : 'a single value'}`, range: root.range });
    return analysis;
  }
  validateAgainstSchema(root, specSchema, lines, diagnostics, memo);
  const model = buildModel(root, text, defaultSpecName(fileName), memo);
  analysis.model = model;
  if (model) new SemanticChecks(model, diagnostics).run();
  checkUnclosedExpressions(source, diagnostics);
  diagnostics.sort((a, b) => a.range.start - b.range.start);
  return analysis;
}

/** `file:line:col: [severity: ]message`, one-based, as compilers print them. */
export function formatDiagnostic(file: string, analysis: SpecAnalysis, diagnostic: SpecDiagnostic, options: { severity: boolean } = { severity: true }): string {
  const { line, character } = analysis.lines.position(diagnostic.range.start);
  return `${file}:${line + 1}:${character + 1}: ${options.severity ? `${diagnostic.severity}: ` : ''}${diagnostic.message}`;
}

export function hasErrors(diagnostics: readonly SpecDiagnostic[]): boolean {
  return diagnostics.some((diagnostic) => diagnostic.severity === 'error');
}

class SemanticChecks {
  private readonly jobsById: Map<string, JobSpec>;

  constructor(
    private readonly spec: SpecModel,
    private readonly diagnostics: SpecDiagnostic[],
  ) {
    this.jobsById = new Map(spec.jobs.map((job) => [job.id, job]));
  }

  run(): void {
    for (const job of this.spec.jobs) {
      this.checkCommand(job);
      this.checkPlacementOfKeys(job);
      if (this.spec.kind === 'workflow') this.checkNeeds(job);
      if (job.sweep) this.checkSweep(job);
    }
    this.checkCycles();
    for (const job of this.spec.jobs) for (const expression of job.expressions) this.checkExpression(job, expression);
  }

  private checkCommand(job: JobSpec): void {
    if (!job.run && !job.notebook) {
      this.error('nothing-to-run', job.idRange, `${this.describe(job)} has nothing to run: add \`run: <command>\` or \`notebook: <file.ipynb>\``);
    } else if (job.run && job.notebook) {
      this.error('misplaced-key', job.notebook.range, `${this.describe(job)} has both \`run\` and \`notebook\`; keep one`);
    } else if (job.notebook && !job.notebook.value.endsWith('.ipynb')) {
      this.warn('invalid-value', job.notebook.range, `'${job.notebook.value}' does not look like a notebook (.ipynb)`);
    }
  }

  private checkPlacementOfKeys(job: JobSpec): void {
    if (this.spec.kind === 'job' && job.needs.length > 0) {
      this.error('misplaced-key', job.needs[0]!.range, '`needs` links jobs of a workflow; a single-job spec has nothing to need');
    }
    if (this.spec.kind === 'workflow' && job.schedule) {
      this.error('misplaced-key', job.schedule.range, `a workflow's jobs run when the workflow does; move \`schedule\` to the top of the spec`);
    }
    if (this.spec.kind === 'workflow' && job.catchUp) {
      this.error('misplaced-key', job.catchUp.range, '`catch_up` belongs beside the workflow\'s `schedule`, at the top of the spec');
    }
    if (this.spec.kind === 'job' && job.catchUp && !job.schedule) {
      this.warn('misplaced-key', job.catchUp.range, '`catch_up` does nothing without a `schedule`');
    }
  }

  private checkNeeds(job: JobSpec): void {
    const seen = new Set<string>();
    for (const need of job.needs) {
      if (seen.has(need.value)) this.warn('unknown-job', need.range, `'${need.value}' is listed twice in needs`);
      seen.add(need.value);
      if (need.value === job.id) {
        this.error('dependency-cycle', need.range, `job '${job.id}' needs itself`);
      } else if (!this.jobsById.has(need.value)) {
        const suggestion = closestMatch(need.value, this.jobsById.keys());
        this.error('unknown-job', need.range, `job '${job.id}' needs '${need.value}', which is not a job of this workflow${didYouMean(suggestion)}`, { suggestion });
      }
    }
  }

  private checkSweep(job: JobSpec): void {
    const sweep = job.sweep!;
    if (sweep.method === 'random' && sweep.samples === undefined) {
      this.error('missing-key', sweep.range, 'a random sweep needs `samples: N`, the number of points to draw');
    }
    if (sweep.method === 'grid' && sweep.samples !== undefined) {
      this.warn('sweep-domain', sweep.range, '`samples` is ignored by a grid sweep, which runs every combination');
    }
    for (const parameter of sweep.parameters) {
      const { domain } = parameter;
      if (domain.kind === 'range') {
        if (!(domain.step > 0)) this.error('sweep-domain', parameter.range, `'${parameter.name}': a range's step must be greater than 0`);
        else if (domainSize(domain) === 0) {
          this.error('sweep-domain', parameter.range, `'${parameter.name}': range [${domain.start}, ${domain.stop}] holds no values (stop is not included)`);
        }
      } else if (domain.kind !== 'values') {
        if (!(domain.low < domain.high)) this.error('sweep-domain', parameter.range, `'${parameter.name}': ${domain.kind} needs low < high`);
        if (sweep.method === 'grid') {
          this.error('sweep-domain', parameter.range, `'${parameter.name}': a grid sweep cannot enumerate a ${domain.kind} interval; give a list or a range, or use method: random`);
        }
      }
      if (job.run && !job.expressions.some((expression) => expression.path?.[0] === 'params' && expression.path[1] === parameter.name)) {
        this.warn('sweep-domain', parameter.range, `sweep parameter '${parameter.name}' is never used as \${{ params.${parameter.name} }}, so its runs would all be the same`);
      }
    }
    const size = sweepSize(sweep);
    if (Number.isNaN(size) || (sweep.method === 'random' && sweep.samples === undefined)) return;
    const count = (): string => size.toLocaleString('en-US');
    if (size === 0) this.error('sweep-size', sweep.range, `the sweep of ${this.describe(job)} expands to 0 runs`);
    else if (size > SWEEP_SIZE_LIMIT) {
      this.error('sweep-size', sweep.range, `the sweep of ${this.describe(job)} expands to ${count()} runs, more than the limit of ${SWEEP_SIZE_LIMIT.toLocaleString('en-US')}; use method: random with samples`);
    } else if (size > SWEEP_WARNING_SIZE) {
      this.warn('sweep-size', sweep.range, `the sweep of ${this.describe(job)} expands to ${count()} runs`);
    }
  }

  /** Reports each dependency cycle once, naming all of it, at the edge that closes it. */
  private checkCycles(): void {
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const reported = new Set<string>();
    const visit = (id: string): void => {
      state.set(id, 'visiting');
      stack.push(id);
      const job = this.jobsById.get(id)!;
      for (const need of job.needs) {
        if (need.value === id || !this.jobsById.has(need.value)) continue;
        const seen = state.get(need.value);
        if (seen === undefined) visit(need.value);
        else if (seen === 'visiting') {
          const cycle = stack.slice(stack.indexOf(need.value));
          const signature = [...cycle].sort().join('\u0000');
          if (reported.has(signature)) continue;
          reported.add(signature);
          // Written in the direction work flows: a → b means b needs a.
          const path = [...cycle, need.value].reverse().join(' → ');
          this.error('dependency-cycle', need.range, `dependency cycle: ${path}; remove one of these needs`, { related: this.cycleEdges(cycle) });
        }
      }
      stack.pop();
      state.set(id, 'done');
    };
    for (const job of this.spec.jobs) if (!state.has(job.id)) visit(job.id);
  }

  private cycleEdges(cycle: string[]): { message: string; range: SourceRange }[] {
    return cycle.map((id, index) => {
      const needed = cycle[(index + 1) % cycle.length]!;
      const edge = this.jobsById.get(id)!.needs.find((need) => need.value === needed)!;
      return { message: `'${id}' needs '${needed}'`, range: edge.range };
    });
  }

  /** Whether `job` transitively needs `producer` (asked only for output references, which are rare). */
  private needsTransitively(job: JobSpec, producer: string): boolean {
    const seen = new Set<string>();
    const pending = job.needs.map((need) => need.value);
    while (pending.length > 0) {
      const id = pending.pop()!;
      if (id === producer) return true;
      if (seen.has(id)) continue;
      seen.add(id);
      for (const need of this.jobsById.get(id)?.needs ?? []) pending.push(need.value);
    }
    return false;
  }

  private checkExpression(job: JobSpec, expression: Expression): void {
    const { path } = expression;
    const usage = 'expressions read params.NAME or jobs.JOB.outputs.NAME';
    if (!path) {
      this.error('bad-expression', expression.range, `cannot read '\${{ ${expression.source} }}': ${usage}`);
      return;
    }
    if (path[0] === 'params') {
      if (path.length !== 2) this.error('bad-expression', expression.pathRange, `'${expression.source}' is not a parameter: write params.NAME`);
      else if (!isParameterOf(job, path[1]!)) {
        // Listed only for the message: most expressions name a parameter the job has.
        const known = [...Object.keys(job.params), ...(job.sweep?.parameters.map((parameter) => parameter.name) ?? [])];
        const suggestion = closestMatch(path[1]!, known);
        const has = known.length ? `it has ${known.join(', ')}` : 'it has no params or sweep';
        this.error('unknown-reference', expression.pathRange, `${this.describe(job)} has no parameter '${path[1]}'${didYouMean(suggestion)} (${has})`, {
          suggestion: suggestion === undefined ? undefined : `params.${suggestion}`,
        });
      }
      return;
    }
    if (path[0] === 'jobs') {
      this.checkOutputReference(job, expression);
      return;
    }
    const suggestion = closestMatch(path[0]!, ['params', 'jobs']);
    this.error('unknown-reference', expression.pathRange, `unknown name '${path[0]}' in '\${{ ${expression.source} }}'${didYouMean(suggestion)}: ${usage}`);
  }

  private checkOutputReference(job: JobSpec, expression: Expression): void {
    const path = expression.path!;
    if (this.spec.kind === 'job') {
      this.error('unknown-reference', expression.pathRange, 'a single-job spec has no other jobs to read outputs from');
      return;
    }
    if (path.length !== 4 || path[2] !== 'outputs') {
      this.error('bad-expression', expression.pathRange, `'${expression.source}' is not an output: write jobs.JOB.outputs.NAME`);
      return;
    }
    const [, producerId, , output] = path as [string, string, string, string];
    const producer = this.jobsById.get(producerId);
    if (!producer) {
      const suggestion = closestMatch(producerId, this.jobsById.keys());
      this.error('unknown-reference', expression.pathRange, `no job '${producerId}' in this workflow${didYouMean(suggestion)}`);
    } else if (!this.needsTransitively(job, producerId)) {
      this.error('unknown-reference', expression.pathRange, `job '${job.id}' reads an output of '${producerId}' but does not need it; add '${producerId}' to its needs`);
    } else if (!(output in producer.outputs)) {
      const declared = Object.keys(producer.outputs);
      const suggestion = closestMatch(output, declared);
      const has = declared.length ? `it declares ${declared.join(', ')}` : 'it declares no outputs';
      this.error('unknown-reference', expression.pathRange, `job '${producerId}' has no output '${output}'${didYouMean(suggestion)} (${has})`);
    }
  }

  private describe(job: JobSpec): string {
    return this.spec.kind === 'workflow' ? `job '${job.id}'` : `'${job.id}'`;
  }

  private error(code: SpecDiagnostic['code'], range: SourceRange, message: string, extra: Extra = {}): void {
    this.push('error', code, range, message, extra);
  }

  private warn(code: SpecDiagnostic['code'], range: SourceRange, message: string): void {
    this.push('warning', code, range, message, {});
  }

  private push(severity: SpecDiagnostic['severity'], code: SpecDiagnostic['code'], range: SourceRange, message: string, extra: Extra): void {
    const diagnostic: SpecDiagnostic = { severity, code, message, range };
    if (extra.suggestion !== undefined) diagnostic.suggestion = extra.suggestion;
    if (extra.related) diagnostic.related = extra.related;
    this.diagnostics.push(diagnostic);
  }
}

type Extra = { suggestion?: string | undefined; related?: SpecDiagnostic['related'] };

/** Whether `name` is one of the job's params or swept parameters. */
function isParameterOf(job: JobSpec, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(job.params, name) || (job.sweep?.parameters.some((parameter) => parameter.name === name) ?? false);
}

/** `${{` that never closes on its line (an expression never spans lines), anywhere in the document. */
function checkUnclosedExpressions(source: YamlSource, diagnostics: SpecDiagnostic[]): void {
  const { text } = source;
  for (let open = text.indexOf('${{'); open >= 0; open = text.indexOf('${{', open + 3)) {
    const close = text.indexOf('}}', open + 3);
    const lineEnd = text.indexOf('\n', open);
    if (close < 0 || (lineEnd >= 0 && close > lineEnd)) {
      diagnostics.push({ severity: 'error', code: 'bad-expression', message: "'${{' is never closed with '}}'", range: { start: open, end: open + 3 } });
    }
  }
}
