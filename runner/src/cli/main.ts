import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { planCommand, validateCommand } from './spec-commands';
import { CliError, EXIT, type CommandOutput } from './output';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(positionals: string[], values: Record<string, unknown>, out: CommandOutput): number;
}

const COMMANDS: Record<string, Command> = {
  validate: {
    summary: 'check specs and report problems as file:line:col: message',
    usage: 'drover validate [--json] SPEC...',
    options: { json: { type: 'boolean' } },
    run: (files, values, out) => validateCommand(files, { json: values['json'] === true }, out),
  },
  plan: {
    summary: 'show the runs a spec expands to (sweeps and workflow steps), without running them',
    usage: 'drover plan [--json] [-p NAME=VALUE]... [--seed N] SPEC',
    options: { json: { type: 'boolean' }, param: { type: 'string', short: 'p', multiple: true }, seed: { type: 'string' } },
    run: (files, values, out) =>
      planCommand(files, { json: values['json'] === true, params: (values['param'] as string[] | undefined) ?? [], seed: values['seed'] as string | undefined }, out),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`);
  return `Usage: drover COMMAND [OPTIONS]\n\nCommands:\n${lines.join('\n')}\n\nRun 'drover COMMAND --help' for a command's options.`;
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(`${__dirname}/../package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function main(argv: string[], out: CommandOutput): number {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out.stdout(usage());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-V') {
    out.stdout(version());
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    out.stderr(`drover: unknown command '${name}'\n\n${usage()}`);
    return EXIT.usage;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
    if (values['help']) {
      out.stdout(`Usage: ${command.usage}\n\n${command.summary}`);
      return EXIT.ok;
    }
    return command.run(positionals, values, out);
  } catch (error) {
    if (error instanceof CliError) {
      out.stderr(`drover ${name}: ${error.message}`);
      return error.exitCode;
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
  process.exitCode = main(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(`${text}\n`),
    stderr: (text) => process.stderr.write(`${text}\n`),
  });
}
