/**
 * Reads the user's OpenSSH client config the way `ssh` does, so a host alias that works in a
 * terminal works in Drover: first obtained value wins, Host/Match blocks, Include with globs,
 * %-tokens, ~ and ${ENV}, and ProxyJump chains resolved through the same config.
 *
 * The `ssh-config` package lexes the files (quoting, multi-value directives); the evaluation
 * is ours because its `compute()` does not follow Include, matches `?` as "zero or one
 * character", is case-sensitive about keywords by default and runs `Match exec` commands.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Line } from 'ssh-config' with { 'resolution-mode': 'import' };

// ssh-config's types are ESM-only; its CommonJS build is what require() loads (and webpack bundles).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sshConfig = require('ssh-config') as typeof import('ssh-config', { with: { 'resolution-mode': 'import' } });

export interface ResolvedSshHost {
  /** The name the user gave (a Host alias or a plain host name). */
  alias: string;
  hostname: string;
  port: number;
  user: string;
  /** Absolute paths, in the order ssh tries them; they need not exist. */
  identityFiles: string[];
  identitiesOnly: boolean;
  /**
   * The hops to go through, in connection order (first hop first). Already flattened the way
   * ssh does it: the first hop's own ProxyJump is prepended, the hops themselves carry none.
   */
  proxyJump: ResolvedSshHost[];
  /** UserKnownHostsFile (default ~/.ssh/known_hosts, ~/.ssh/known_hosts2); empty for `none`. */
  knownHostsFiles: string[];
  /** GlobalKnownHostsFile (default /etc/ssh/ssh_known_hosts, /etc/ssh/ssh_known_hosts2). */
  globalKnownHostsFiles?: string[];
  /** The name the host key is looked up under in known_hosts (HostKeyAlias, else hostname). */
  hostKeyAlias?: string;
  strictHostKeyChecking?: 'yes' | 'no' | 'accept-new' | 'ask';
  /** IdentityAgent: a socket path, or 'none' to use no agent. Unset: SSH_AUTH_SOCK. */
  identityAgent?: string;
  connectTimeoutMs?: number;
  /** Unset when ServerAliveInterval is 0 (ssh's default: no keepalives). */
  serverAliveIntervalMs?: number;
  serverAliveCountMax?: number;
}

export interface SshConfigOptions {
  /** Default: env DROVER_SSH_CONFIG, else ~/.ssh/config. A missing file means ssh's defaults. */
  configPath?: string;
  /** Default: os.homedir(). Used for ~, %d, relative Includes and the default files. */
  homeDir?: string;
}

export class SshConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SshConfigError';
  }
}

const MAX_INCLUDE_DEPTH = 16; // OpenSSH's READCONF_MAX_DEPTH
const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
const DEFAULT_GLOBAL_KNOWN_HOSTS = ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];

interface Env {
  home: string;
  localUser: string;
}

export function resolveSshHost(alias: string, options: SshConfigOptions = {}): ResolvedSshHost {
  const env = makeEnv(options);
  const configPath = configPathOf(options, env);
  return resolveWithChain(alias, {}, configPath, env, []);
}

/** Concrete Host aliases (no wildcards, no negations), Includes followed, in file order. */
export function listSshAliases(options: SshConfigOptions = {}): string[] {
  const env = makeEnv(options);
  const seen = new Set<string>();
  const visit = (file: string, depth: number): void => {
    for (const line of flatten(readConfigFile(file))) {
      if (line.type !== sshConfig.LineType.DIRECTIVE) continue;
      const param = line.param.toLowerCase();
      if (param === 'host') {
        for (const pattern of values(line.value)) if (!/[*?!]/.test(pattern)) seen.add(pattern);
      } else if (param === 'include') {
        if (depth >= MAX_INCLUDE_DEPTH) throw new SshConfigError(`${file}: too many nested Includes`);
        for (const included of includeFiles(values(line.value), env)) visit(included, depth + 1);
      }
    }
  };
  visit(configPathOf(options, env), 0);
  return [...seen];
}

function makeEnv(options: SshConfigOptions): Env {
  return { home: options.homeDir ?? os.homedir(), localUser: localUserName() };
}

function configPathOf(options: SshConfigOptions, env: Env): string {
  const given = options.configPath ?? (process.env.DROVER_SSH_CONFIG || undefined);
  return given === undefined ? path.join(env.home, '.ssh', 'config') : expandTilde(given, env.home);
}

function localUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    // userInfo() throws for a uid without a passwd entry (some containers).
    return process.env.USER ?? process.env.LOGNAME ?? String(process.getuid?.() ?? 'user');
  }
}

/** What a ProxyJump hop (or the command line) fixes before the config is read. */
interface Overrides {
  user?: string;
  port?: number;
}

function resolveWithChain(alias: string, overrides: Overrides, configPath: string, env: Env, chain: string[]): ResolvedSshHost {
  if (chain.includes(alias)) {
    throw new SshConfigError(`ProxyJump loop in ${configPath}: ${[...chain, alias].join(' -> ')}`);
  }
  const options = evaluate(alias, configPath, env);
  const host = finish(alias, options, overrides, configPath, env);

  const proxy = options.proxy;
  if (proxy?.kind === 'command') {
    throw new SshConfigError(`${alias}: ProxyCommand is not supported by Drover (${configPath}); use ProxyJump instead`);
  }
  if (proxy?.kind === 'jump' && proxy.value.toLowerCase() !== 'none') {
    const hops = parseProxyJump(proxy.value, alias, configPath);
    // ssh runs `ssh -J hop1,…,hopN-1 -W target hopN`, recursively: only the first hop's own
    // ProxyJump applies, every later hop's is overridden by the -J it is given.
    const [first, ...rest] = hops.map((hop, i) =>
      i === 0 ? resolveWithChain(hop.host, hop, configPath, env, [...chain, alias]) : finish(hop.host, evaluate(hop.host, configPath, env), hop, configPath, env),
    );
    if (first) host.proxyJump = [...first.proxyJump, { ...first, proxyJump: [] }, ...rest];
  }
  return host;
}

interface Hop extends Overrides {
  host: string;
}

function parseProxyJump(value: string, alias: string, configPath: string): Hop[] {
  return value.split(',').map((raw) => {
    let spec = raw.trim();
    if (spec.startsWith('ssh://')) spec = spec.slice('ssh://'.length).replace(/\/$/, '');
    const hop: Hop = { host: '' };
    const at = spec.lastIndexOf('@');
    if (at >= 0) {
      hop.user = spec.slice(0, at);
      spec = spec.slice(at + 1);
    }
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
    const plain = /^([^:[\]]+)(?::(\d+))?$/.exec(spec);
    const match = bracketed ?? plain;
    if (!match || (at >= 0 && !hop.user)) {
      throw new SshConfigError(`${alias}: bad ProxyJump hop "${raw.trim()}" in ${configPath} (expected [user@]host[:port])`);
    }
    hop.host = match[1]!;
    if (match[2] !== undefined) hop.port = parsePort(match[2], `ProxyJump hop "${raw.trim()}"`, configPath);
    return hop;
  });
}

/** First-obtained option values (lowercased keys) plus the accumulated IdentityFiles. */
class Options {
  private readonly values = new Map<string, string>();
  private readonly multi = new Map<string, string[]>();
  readonly identityFiles: string[] = [];

  /** ProxyJump and ProxyCommand exclude each other: whichever is obtained first wins. */
  proxy?: { kind: 'jump' | 'command'; value: string };

  set(key: string, value: string, all: string[]): void {
    if (key === 'identityfile') {
      this.identityFiles.push(value);
      return;
    }
    if ((key === 'proxyjump' || key === 'proxycommand') && this.proxy === undefined) {
      this.proxy = { kind: key === 'proxyjump' ? 'jump' : 'command', value };
      // `ProxyCommand none` means a direct connection, like `ProxyJump none`.
      if (key === 'proxycommand' && value.toLowerCase() === 'none') this.proxy = { kind: 'jump', value: 'none' };
    }
    if (this.values.has(key)) return;
    this.values.set(key, value);
    this.multi.set(key, all);
  }

  get(key: string): string | undefined {
    return this.values.get(key);
  }

  getAll(key: string): string[] | undefined {
    return this.multi.get(key);
  }
}

interface MatchContext {
  alias: string;
  options: Options;
  env: Env;
  final: boolean;
  wantFinal: boolean;
  configPath: string;
}

function evaluate(alias: string, configPath: string, env: Env): Options {
  const options = new Options();
  const ctx: MatchContext = { alias, options, env, final: false, wantFinal: false, configPath };
  evaluateFile(configPath, ctx, { active: true }, false, 0);
  if (ctx.wantFinal) {
    // `Match final`: ssh reads the config once more, with options already set kept.
    ctx.final = true;
    evaluateFile(configPath, ctx, { active: true }, false, 0);
  }
  return options;
}

/** Mirrors readconf.c: `active` is shared with included files and restored after each one. */
function evaluateFile(file: string, ctx: MatchContext, state: { active: boolean }, neverMatch: boolean, depth: number): void {
  for (const line of flatten(readConfigFile(file))) {
    if (line.type !== sshConfig.LineType.DIRECTIVE) continue;
    const key = line.param.toLowerCase();
    const all = values(line.value);
    if (key === 'host') {
      state.active = !neverMatch && matchPatternList(all, ctx.alias, false);
    } else if (key === 'match') {
      state.active = !neverMatch && evaluateMatch(all, ctx, file);
    } else if (key === 'include') {
      if (depth >= MAX_INCLUDE_DEPTH) throw new SshConfigError(`${file}: too many nested Includes`);
      const outer = state.active;
      for (const included of includeFiles(all, ctx.env)) {
        evaluateFile(included, ctx, state, neverMatch || !outer, depth + 1);
        state.active = outer;
      }
    } else if (state.active && all.length > 0) {
      ctx.options.set(key, typeof line.value === 'string' ? line.value : all.join(' '), all);
    }
  }
}

function evaluateMatch(words: string[], ctx: MatchContext, file: string): boolean {
  let result = true;
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const negate = word.startsWith('!');
    const criterion = (negate ? word.slice(1) : word).toLowerCase();
    let matched: boolean;
    if (criterion === 'all') matched = true;
    else if (criterion === 'canonical') matched = false; // Drover does no hostname canonicalization
    else if (criterion === 'final') {
      ctx.wantFinal = true;
      matched = ctx.final;
    } else {
      const arg = words[++i];
      if (arg === undefined) throw new SshConfigError(`${file}: Match ${criterion} needs an argument`);
      const patterns = arg.split(',');
      switch (criterion) {
        case 'host':
          matched = matchPatternList(patterns, expandHostName(ctx.options.get('hostname'), ctx.alias), true);
          break;
        case 'originalhost':
          matched = matchPatternList(patterns, ctx.alias, true);
          break;
        case 'user':
          matched = matchPatternList(patterns, ctx.options.get('user') ?? ctx.env.localUser, false);
          break;
        case 'localuser':
          matched = matchPatternList(patterns, ctx.env.localUser, false);
          break;
        default:
          // exec (a shell command), tagged, localnetwork, …: never run or evaluated here.
          matched = false;
      }
    }
    if (negate ? matched : !matched) result = false;
  }
  return result;
}

/** ssh_config PATTERNS: any negated match rejects the whole list; else any positive match. */
export function matchPatternList(patterns: string[], text: string, ignoreCase: boolean): boolean {
  let matched = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = negate ? raw.slice(1) : raw;
    if (matchPattern(pattern, text, ignoreCase)) {
      if (negate) return false;
      matched = true;
    }
  }
  return matched;
}

/** `*` any run of characters, `?` exactly one. */
export function matchPattern(pattern: string, text: string, ignoreCase: boolean): boolean {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, ignoreCase ? 'is' : 's').test(text);
}

function flatten(config: Line[]): Line[] {
  const out: Line[] = [];
  for (const line of config) {
    out.push(line);
    if ('config' in line) out.push(...flatten(line.config));
  }
  return out;
}

function values(value: string | { val: string }[]): string[] {
  return typeof value === 'string' ? (value === '' ? [] : [value]) : value.map((v) => v.val);
}

function readConfigFile(file: string): Line[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new SshConfigError(`cannot read SSH config ${file}: ${(error as Error).message}`);
  }
  try {
    return sshConfig.parse(text);
  } catch (error) {
    throw new SshConfigError(`cannot parse SSH config ${file}: ${(error as Error).message}`);
  }
}

/** Include arguments: relative to ~/.ssh, ~ expanded, globbed, each glob's matches sorted. */
function includeFiles(args: string[], env: Env): string[] {
  const files: string[] = [];
  for (const arg of args) {
    const expanded = expandTilde(arg, env.home);
    const absolute = path.isAbsolute(expanded) ? expanded : path.join(env.home, '.ssh', expanded);
    files.push(...glob(absolute).filter((file) => fs.statSync(file).isFile()));
  }
  return files;
}

/** POSIX glob over path segments (`*`, `?`, `[...]`); like glob(3), `*` skips dot files. */
export function glob(pattern: string): string[] {
  const segments = pattern.split('/');
  let current = [segments[0] === '' ? '/' : segments[0]!];
  for (const segment of segments.slice(1)) {
    if (segment === '') continue;
    const next: string[] = [];
    if (!/[*?[]/.test(segment)) {
      for (const dir of current) next.push(path.join(dir, segment));
    } else {
      const re = globSegmentRegExp(segment);
      for (const dir of current) {
        let names: string[];
        try {
          names = fs.readdirSync(dir);
        } catch {
          continue;
        }
        for (const name of names.sort()) {
          if (name.startsWith('.') && !segment.startsWith('.')) continue;
          if (re.test(name)) next.push(path.join(dir, name));
        }
      }
    }
    current = next;
  }
  return current.filter((file) => fs.existsSync(file));
}

function globSegmentRegExp(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close < 0) {
        source += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, close);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      source += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else source += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's');
}

function expandTilde(value: string, home: string): string {
  if (value === '~') return home;
  if (value.startsWith('~/')) return path.join(home, value.slice(2));
  return value;
}

function expandHostName(hostName: string | undefined, alias: string): string {
  if (hostName === undefined) return alias;
  return hostName.replace(/%([%h])/g, (_, token: string) => (token === '%' ? '%' : alias));
}

interface TokenValues {
  home: string;
  localUser: string;
  hostname: string;
  remoteUser: string;
  alias: string;
  port: number;
}

/** ssh's %-tokens and ${ENV} for path-like directives, then ~. */
function expandPath(value: string, tokens: TokenValues, directive: string, configPath: string): string {
  const withEnv = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const v = process.env[name];
    if (v === undefined) throw new SshConfigError(`${directive} ${value} in ${configPath}: environment variable ${name} is not set`);
    return v;
  });
  const withTokens = withEnv.replace(/%(.)/g, (_, token: string) => {
    switch (token) {
      case '%': return '%';
      case 'd': return tokens.home;
      case 'u': return tokens.localUser;
      case 'h': return tokens.hostname;
      case 'r': return tokens.remoteUser;
      case 'n': return tokens.alias;
      case 'p': return String(tokens.port);
      case 'l': return os.hostname();
      case 'L': return os.hostname().split('.')[0]!;
      case 'i': return String(process.getuid?.() ?? '');
      default:
        throw new SshConfigError(`${directive} ${value} in ${configPath}: unknown token %${token}`);
    }
  });
  const expanded = expandTilde(withTokens, tokens.home);
  // ssh reads a relative IdentityFile/known_hosts path relative to the working directory; a
  // daemon's working directory means nothing to the user, so anchor it at ~ instead.
  return path.isAbsolute(expanded) ? expanded : path.join(tokens.home, expanded);
}

function parsePort(value: string, what: string, configPath: string): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new SshConfigError(`${what}: bad port "${value}" in ${configPath}`);
  return port;
}

function parseNumber(value: string | undefined, directive: string, configPath: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new SshConfigError(`${directive} ${value} in ${configPath}: expected a whole number`);
  return Number(value);
}

function parseYesNo(value: string | undefined): boolean {
  return value !== undefined && ['yes', 'true'].includes(value.toLowerCase());
}

function finish(alias: string, options: Options, overrides: Overrides, configPath: string, env: Env): ResolvedSshHost {
  const hostname = expandHostName(options.get('hostname'), alias);
  const portValue = options.get('port');
  const port = overrides.port ?? (portValue === undefined ? 22 : parsePort(portValue, `${alias}: Port`, configPath));
  const user = overrides.user ?? options.get('user') ?? env.localUser;
  const tokens: TokenValues = { home: env.home, localUser: env.localUser, hostname, remoteUser: user, alias, port };

  const identityFiles = (options.identityFiles.length > 0 ? options.identityFiles : DEFAULT_IDENTITIES.map((f) => `~/.ssh/${f}`))
    .filter((f) => f.toLowerCase() !== 'none')
    .map((f) => expandPath(f, tokens, 'IdentityFile', configPath));

  const knownHosts = options.getAll('userknownhostsfile') ?? ['~/.ssh/known_hosts', '~/.ssh/known_hosts2'];
  const knownHostsFiles = knownHosts.length === 1 && knownHosts[0]!.toLowerCase() === 'none'
    ? []
    : knownHosts.map((f) => expandPath(f, tokens, 'UserKnownHostsFile', configPath));
  const globalKnownHosts = options.getAll('globalknownhostsfile') ?? DEFAULT_GLOBAL_KNOWN_HOSTS;
  const globalKnownHostsFiles = globalKnownHosts.length === 1 && globalKnownHosts[0]!.toLowerCase() === 'none'
    ? []
    : globalKnownHosts.map((f) => expandPath(f, tokens, 'GlobalKnownHostsFile', configPath));

  const host: ResolvedSshHost = {
    alias,
    hostname,
    port,
    user,
    identityFiles: [...new Set(identityFiles)],
    identitiesOnly: parseYesNo(options.get('identitiesonly')),
    proxyJump: [],
    knownHostsFiles,
    globalKnownHostsFiles,
  };

  const hostKeyAlias = options.get('hostkeyalias');
  if (hostKeyAlias !== undefined) host.hostKeyAlias = hostKeyAlias;

  const strict = options.get('stricthostkeychecking');
  if (strict !== undefined) host.strictHostKeyChecking = parseStrictHostKeyChecking(strict, alias, configPath);

  const agent = options.get('identityagent');
  if (agent !== undefined) {
    if (agent.toLowerCase() === 'none') host.identityAgent = 'none';
    else if (agent === 'SSH_AUTH_SOCK') {
      // The default, spelled out.
    } else if (agent.startsWith('$') && !agent.startsWith('${')) {
      const v = process.env[agent.slice(1)];
      if (v) host.identityAgent = v;
    } else host.identityAgent = expandPath(agent, tokens, 'IdentityAgent', configPath);
  }

  const connectTimeout = parseNumber(options.get('connecttimeout'), 'ConnectTimeout', configPath);
  if (connectTimeout !== undefined && connectTimeout > 0) host.connectTimeoutMs = connectTimeout * 1000;
  const aliveInterval = parseNumber(options.get('serveraliveinterval'), 'ServerAliveInterval', configPath);
  if (aliveInterval !== undefined && aliveInterval > 0) host.serverAliveIntervalMs = aliveInterval * 1000;
  const aliveCount = parseNumber(options.get('serveralivecountmax'), 'ServerAliveCountMax', configPath);
  if (aliveCount !== undefined) host.serverAliveCountMax = aliveCount;
  return host;
}

function parseStrictHostKeyChecking(value: string, alias: string, configPath: string): NonNullable<ResolvedSshHost['strictHostKeyChecking']> {
  switch (value.toLowerCase()) {
    case 'yes':
    case 'true':
      return 'yes';
    case 'no':
    case 'false':
    case 'off':
      return 'no';
    case 'accept-new':
      return 'accept-new';
    case 'ask':
      return 'ask';
    default:
      throw new SshConfigError(`${alias}: bad StrictHostKeyChecking "${value}" in ${configPath}`);
  }
}
