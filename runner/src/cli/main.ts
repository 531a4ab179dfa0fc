import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DaemonRefused, DaemonUnavailable } from '../../../common/node/daemon-client';
import { DROVER_VERSION } from '../version';
import { daemonCommand } from './daemon-commands';
import { cancelCommand, hostsCommand, logsCommand, metricsCommand, psCommand, runCommand, runsCommand, scheduleCommand, showCommand, submitCommand } from './job-commands';
import { CliError, EXIT, type CommandOutput } from './output';
import { planCommand, validateCommand } from './spec-commands';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(positionals: string[], values: Record<string, unknown>, out: CommandOutput): number | Promise<number>;
}

const json = { json: { type: 'boolean' } } as const;
const flag = (values: Record<string, unknown>, name: string) => values[name] === true;
const text = (values: Record<string, unknown>, name: string) => values[name] as string | undefined;

const COMMANDS: Record<string, Command> = {
  validate: {
    summary: 'check specs and report problems as file:line:col: message',
    usage: 'drover validate [--json] SPEC...',
    options: { ...json },
    run: (files, values, out) => validateCommand(files, { json: flag(values, 'json') }, out),
  },
  plan: {
    summary: 'show the runs a spec expands to (sweeps and workflow steps), without running them',
    usage: 'drover plan [--json] [-p NAME=VALUE]... [--seed N] SPEC',
    options: { ...json, param: { type: 'string', short: 'p', multiple: true }, seed: { type: 'string' } },
    run: (files, values, out) => planCommand(files, { json: flag(values, 'json'), params: (values['param'] as string[] | undefined) ?? [], seed: text(values, 'seed') }, out),
  },
  submit: {
    summary: 'queue the runs of a spec; --wait streams their logs and exits with their result',
    usage: 'drover submit [--wait] [--json] [--host ALIAS] [--preview-sbatch] [-p NAME=VALUE]... SPEC',
    options: { ...json, wait: { type: 'boolean', short: 'w' }, param: { type: 'string', short: 'p', multiple: true }, host: { type: 'string' }, 'preview-sbatch': { type: 'boolean' } },
    run: (files, values, out) =>
      submitCommand(
        files,
        { params: (values['param'] as string[] | undefined) ?? [], ...optional('host', text(values, 'host')), wait: flag(values, 'wait'), json: flag(values, 'json'), previewSbatch: flag(values, 'preview-sbatch') },
        out,
      ),
  },
  sbatch: {
    summary: 'print the sbatch scripts a spec becomes on a SLURM cluster, without submitting (Preview sbatch)',
    usage: 'drover sbatch [--json] [--host CLUSTER] [-p NAME=VALUE]... SPEC',
    options: { ...json, param: { type: 'string', short: 'p', multiple: true }, host: { type: 'string' } },
    run: (files, values, out) =>
      submitCommand(files, { params: (values['param'] as string[] | undefined) ?? [], ...optional('host', text(values, 'host')), wait: false, json: flag(values, 'json'), previewSbatch: true }, out),
  },
  run: {
    summary: 'run a command or a notebook as a job: drover run --gpus 1 -- python train.py; drover run --wait -p lr=0.1 eval.ipynb',
    usage: 'drover run [--gpus N|TYPE:N] [--cpus N] [--mem SIZE] [--name NAME] [--timeout DURATION] [--retries N] [--host ALIAS] [-p NAME=VALUE]... [--preview-sbatch] [--wait] [--json] -- COMMAND... | NOTEBOOK.ipynb',
    options: {
      ...json,
      wait: { type: 'boolean', short: 'w' },
      gpus: { type: 'string' },
      cpus: { type: 'string' },
      mem: { type: 'string' },
      name: { type: 'string' },
      timeout: { type: 'string' },
      retries: { type: 'string' },
      host: { type: 'string' },
      'preview-sbatch': { type: 'boolean' },
      param: { type: 'string', short: 'p', multiple: true },
    },
    run: (command, values, out) =>
      runCommand(
        command,
        {
          previewSbatch: flag(values, 'preview-sbatch'),
          ...optional('gpus', text(values, 'gpus')),
          ...optional('cpus', text(values, 'cpus')),
          ...optional('mem', text(values, 'mem')),
          ...optional('name', text(values, 'name')),
          ...optional('timeout', text(values, 'timeout')),
          ...optional('retries', text(values, 'retries')),
          ...optional('host', text(values, 'host')),
          params: (values['param'] as string[] | undefined) ?? [],
          wait: flag(values, 'wait'),
          json: flag(values, 'json'),
        },
        out,
      ),
  },
  ps: {
    summary: 'what is queued and running, and why pending runs wait',
    usage: 'drover ps [--all] [--json]',
    options: { ...json, all: { type: 'boolean', short: 'a' } },
    run: (_, values, out) => psCommand({ all: flag(values, 'all'), json: flag(values, 'json') }, out),
  },
  runs: {
    summary: 'recent runs, newest first',
    usage: 'drover runs [--limit N] [--json]',
    options: { ...json, limit: { type: 'string', short: 'n' } },
    run: (_, values, out) => runsCommand({ limit: text(values, 'limit'), json: flag(values, 'json') }, out),
  },
  show: {
    summary: "a run's details and what reproduces it",
    usage: 'drover show [--json] ID',
    options: { ...json },
    run: (ids, values, out) => showCommand(ids, { json: flag(values, 'json') }, out),
  },
  logs: {
    summary: "a run's output; -f follows it until the run ends",
    usage: 'drover logs [-f] [--attempt N] ID',
    options: { follow: { type: 'boolean', short: 'f' }, attempt: { type: 'string' } },
    run: (ids, values, out) => logsCommand(ids, { follow: flag(values, 'follow'), attempt: text(values, 'attempt') }, out),
  },
  cancel: {
    summary: 'stop runs (SIGTERM, then SIGKILL after a grace period) or drop queued ones',
    usage: 'drover cancel [--json] ID...',
    options: { ...json },
    run: (ids, values, out) => cancelCommand(ids, { json: flag(values, 'json') }, out),
  },
  metrics: {
    summary: 'the metrics a run reported',
    usage: 'drover metrics [--json] ID',
    options: { ...json },
    run: (ids, values, out) => metricsCommand(ids, { json: flag(values, 'json') }, out),
  },
  hosts: {
    summary: 'the hosts Drover can use, their GPUs and who holds them; add or remove SSH hosts and SLURM clusters',
    usage: 'drover hosts [add ALIAS | add NAME --slurm [--via ALIAS] [--workdir-root PATH] | remove NAME] [--json]',
    options: { ...json, slurm: { type: 'boolean' }, via: { type: 'string' }, 'workdir-root': { type: 'string' } },
    run: (args, values, out) =>
      hostsCommand(args, { json: flag(values, 'json'), slurm: flag(values, 'slurm'), ...optional('via', text(values, 'via')), ...optional('workdirRoot', text(values, 'workdir-root')) }, out),
  },
  schedule: {
    summary: 'specs that run on their `schedule:` (cron): list them, add one, remove one',
    usage: 'drover schedule [list | add [--host ALIAS] [-p NAME=VALUE]... SPEC | remove NAME] [--json]',
    options: { ...json, param: { type: 'string', short: 'p', multiple: true }, host: { type: 'string' } },
    run: (args, values, out) => scheduleCommand(args, { params: (values['param'] as string[] | undefined) ?? [], ...optional('host', text(values, 'host')), json: flag(values, 'json') }, out),
  },
  daemon: {
    summary: 'start, stop or check the background daemon (it also starts on demand)',
    usage: 'drover daemon start|stop|status [--json]',
    options: { ...json },
    run: (args, values, out) => daemonCommand(args, { json: flag(values, 'json') }, out),
  },
};

/** Other names a command answers to. */
const ALIASES: Record<string, string> = { queue: 'ps' };

/** The command a word names, itself or by an alias; only the table's own entries (not `constructor`…). */
function commandNamed(word: string): Command | undefined {
  const name = Object.hasOwn(ALIASES, word) ? ALIASES[word]! : word;
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const aliasesOf = (name: string) => Object.keys(ALIASES).filter((alias) => ALIASES[alias] === name);
  const lines = Object.entries(COMMANDS).map(([name, command]) => {
    const aliases = aliasesOf(name);
    return `  ${name.padEnd(width)}  ${command.summary}${aliases.length ? ` (also: ${aliases.map((alias) => `drover ${alias}`).join(', ')})` : ''}`;
  });
  return `Usage: drover COMMAND [OPTIONS]\n\nCommands:\n${lines.join('\n')}\n\nRun 'drover COMMAND --help' for a command's options.`;
}

function optional<K extends string>(name: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [name]: value }) as { [P in K]?: string };
}

/** `drover run` options end at `--` or at the first word that is not an option: the command (a notebook excepted). */
function splitRunArguments(args: string[]): string[] {
  const withValue = new Set(['--gpus', '--cpus', '--mem', '--name', '--timeout', '--retries', '--host', '--param', '-p']);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return args;
    // A notebook takes no arguments of its own, so options may follow it (`drover run eval.ipynb --host box`).
    if (!arg.startsWith('-')) return arg.endsWith('.ipynb') ? args : [...args.slice(0, i), '--', ...args.slice(i)];
    if (withValue.has(arg)) i++;
  }
  return args;
}

export async function main(argv: string[], out: CommandOutput): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out.stdout(usage());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-V') {
    out.stdout(DROVER_VERSION);
    return EXIT.ok;
  }
  const command = commandNamed(name);
  if (!command) {
    out.stderr(`drover: unknown command '${name}'\n\n${usage()}`);
    return EXIT.usage;
  }
  try {
    const args = name === 'run' ? splitRunArguments(rest) : rest;
    const { values, positionals } = parseArgs({ args, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
    if (values['help']) {
      out.stdout(`Usage: ${command.usage}\n\n${command.summary}`);
      return EXIT.ok;
    }
    return await command.run(positionals, values, out);
  } catch (error) {
    if (error instanceof CliError) {
      out.stderr(`drover ${name}: ${error.message}`);
      return error.exitCode;
    }
    if (error instanceof DaemonRefused || error instanceof DaemonUnavailable) {
      out.stderr(`drover ${name}: ${error.message}`);
      return error instanceof DaemonRefused ? EXIT.invalid : EXIT.unavailable;
    }
    if (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
      out.stderr(`drover ${name}: ${error.message}\nUsage: ${command.usage}`);
      return EXIT.usage;
    }
    throw error;
  }
}

/** The process entry point (bin/drover.js). */
export function run(): void {
  // A reader that stops early (`drover runs --json | head`) closes the pipe: the command ends
  // quietly, as one killed by SIGPIPE (128 + 13), the way other Unix tools do, with no stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit(141);
    });
  }
  void main(process.argv.slice(2), {
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
  }).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      process.stderr.write(`drover: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 70;
    },
  );
}
