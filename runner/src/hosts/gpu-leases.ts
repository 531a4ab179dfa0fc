/**
 * GPU leases: how several Drover daemons (of one user or several) that share a machine, with no
 * scheduler between them, never hand the same GPU to two runs. Each GPU's lease is a file named
 * after its UUID in a lease folder on the machine itself (`$DROVER_GPU_LEASE_DIR`, by default
 * /tmp/drover-gpu-leases, world-writable so every user's daemon can take and reclaim leases).
 * The file holds one owner record line: which daemon, user, machine, run and attempt, the pid
 * whose life the lease lasts, the boot it was taken in, and when.
 *
 * A lease is taken under `flock` on the folder's lock file, so checking and taking are one step
 * for every daemon; a lease whose process is gone (or that was taken before the last boot) is
 * stale and taken over. The scripts here run under `sh -s`, on SSH hosts inside the launch
 * script (take-lease-and-launch is one round trip) and on the local host alike, so there is one
 * definition of the protocol. Without flock (not Linux) taking is still exclusive (O_EXCL), only
 * the takeover of a stale lease may race.
 */
import { spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import { shellWord } from '../../../common/spec';

/** Where leases live when the machine does not say otherwise. */
export const DEFAULT_LEASE_DIR = '/tmp/drover-gpu-leases';

/** One held lease, as read back from its record. */
export interface GpuLease {
  /** The GPU's UUID (the lease file's name). */
  gpu: string;
  daemonId: string;
  user: string;
  machine: string;
  jobId: number;
  attempt: number;
  pid: number;
  /** Seconds since the epoch. */
  since: number;
}

/** Who takes a lease: the fields of the record the taking daemon knows. */
export interface LeaseOwner {
  daemonId: string;
  user: string;
  machine: string;
  jobId: number;
  attempt: number;
}

const UUID = /^[A-Za-z0-9._-]+$/;

/** Record fields are single words: anything else a user or machine name holds becomes `_`. */
function word(value: string): string {
  return value.replace(/[^A-Za-z0-9._@+-]/g, '_') || '_';
}

export function leaseOwner(daemonId: string, machine: string, jobId: number, attempt: number): LeaseOwner {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env['USER'] ?? 'unknown';
  }
  return { daemonId, user, machine, jobId, attempt };
}

function gpuWords(gpus: readonly string[]): string {
  for (const gpu of gpus) if (!UUID.test(gpu)) throw new Error(`not a GPU UUID: ${JSON.stringify(gpu)}`);
  return gpus.map(shellWord).join(' ');
}

/**
 * Shell functions every lease script starts with. `lease_live FILE` is true when the file holds
 * the record of a live owner; `lease_take PID GPU...` takes every GPU or none (printing
 * `held GPU RECORD` for each one held by someone else); `lease_set PID GPU...` points our leases
 * at the process whose life they last.
 */
function leaseFunctions(owner: LeaseOwner | undefined): string {
  const record = owner
    ? `v=1 daemon=${word(owner.daemonId)} user=${word(owner.user)} machine=${word(owner.machine)} job=${owner.jobId} attempt=${owner.attempt}`
    : '';
  const ours = owner ? `daemon=${word(owner.daemonId)} user=${word(owner.user)} machine=${word(owner.machine)} job=${owner.jobId} attempt=${owner.attempt} ` : '';
  return [
    `L="\${DROVER_GPU_LEASE_DIR:-${DEFAULT_LEASE_DIR}}"`,
    `REC=${shellWord(record)}`,
    `OURS=${shellWord(ours)}`,
    'BOOT=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)',
    // The process's start time in clock ticks since boot, so a reused pid is not mistaken for the owner.
    "pstart() { sed 's/.*) //' \"/proc/$1/stat\" 2>/dev/null | cut -d' ' -f20; }",
    'field() { printf "%s\\n" "$1" | sed -n "s/.* $2=\\([^ ]*\\).*/\\1/p"; }',
    // A launch script hands its leases to the run it started, then ends: a record read just before
    // the handover names a process that may be gone by the time it is looked up. So a lease that
    // looks stale is read again, and a record that changed meanwhile decides.
    'lease_live() {',
    '  first=$(cat "$1" 2>/dev/null) || return 1',
    '  lease_record_live "$first" && return 0',
    '  again=$(cat "$1" 2>/dev/null) || return 1',
    '  [ "$again" != "$first" ] && lease_record_live "$again"',
    '}',
    'lease_record_live() {',
    '  rec=$1',
    '  [ -n "$rec" ] || return 1',
    '  rec=" $rec "',
    '  p=$(field "$rec" pid); b=$(field "$rec" boot); s=$(field "$rec" pstart)',
    '  case "$p" in ""|*[!0-9]*) return 1 ;; esac',
    '  [ -n "$b" ] && [ -n "$BOOT" ] && [ "$b" != "$BOOT" ] && return 1',
    '  if [ -d /proc/self ]; then',
    '    [ -d "/proc/$p" ] || return 1',
    "    [ \"$(sed 's/.*) //' \"/proc/$p/stat\" 2>/dev/null | cut -c1)\" = Z ] && return 1",
    '    [ -z "$s" ] || [ "$s" = "$(pstart "$p")" ] || return 1',
    '  else',
    '    ps -p "$p" >/dev/null 2>&1 || return 1',
    '  fi',
    '  return 0',
    '}',
    'lease_write() {',
    '  printf "%s pid=%s pstart=%s boot=%s since=%s\\n" "$REC" "$2" "$(pstart "$2")" "$BOOT" "$(date +%s)" > "$1"',
    '}',
    'lease_lock() {',
    '  [ -d "$L" ] || { mkdir -p "$L" 2>/dev/null && chmod 0777 "$L" 2>/dev/null; }',
    '  [ -e "$L/.lock" ] || { touch "$L/.lock" && chmod 0644 "$L/.lock"; } 2>/dev/null',
    // A failed `exec` redirection ends a non-interactive sh, so it is tried only on a readable file.
    '  if command -v flock >/dev/null 2>&1 && [ -r "$L/.lock" ]; then exec 9<"$L/.lock"; flock -w 30 9 || return 1; fi',
    '  return 0',
    '}',
    'lease_unlock() { exec 9<&- 2>/dev/null || true; }',
    'lease_take() {',
    '  pid=$1; shift',
    '  lease_lock || { echo "lease-error the lock $L/.lock was not free within 30 s"; return 1; }',
    '  held=0',
    '  for g in "$@"; do',
    '    f="$L/$g"',
    '    lease_live "$f" || continue',
    '    case " $(cat "$f") " in *" $OURS"*) continue ;; esac',
    '    printf "held %s %s\\n" "$g" "$(cat "$f")"; held=1',
    '  done',
    '  if [ "$held" = 0 ]; then',
    '    for g in "$@"; do',
    '      rm -f "$L/$g"',
    '      ( set -C; lease_write "$L/$g" "$pid" ) 2>/dev/null || { echo "lease-error cannot write $L/$g"; held=1; break; }',
    '    done',
    '  fi',
    '  lease_unlock',
    '  [ "$held" = 0 ]',
    '}',
    'lease_set() {',
    '  pid=$1; shift',
    '  for g in "$@"; do lease_write "$L/.$g.$$" "$pid" && mv -f "$L/.$g.$$" "$L/$g"; done',
    '}',
  ].join('\n');
}

/**
 * Takes the leases on `gpus` for `owner` with the life of process `pid` (a shell word or
 * expression such as "$$"). Prints `held …`/`lease-error …` lines and exits 3 when it could not.
 */
export function takeLeasesScript(owner: LeaseOwner, gpus: readonly string[], pid: string): string {
  return [leaseFunctions(owner), `lease_take ${pid} ${gpuWords(gpus)} || exit 3`].join('\n');
}

/** The lines a launch script puts before starting its process: on failure it prints why and exits 3. */
export function takeLeasesLines(owner: LeaseOwner, gpus: readonly string[]): string[] {
  if (gpus.length === 0) return [];
  return [leaseFunctions(owner), `lease_take "$$" ${gpuWords(gpus)} || exit 3`];
}

/** The line a launch script runs once its process started: the leases last as long as it does. */
export function ownLeasesLine(gpus: readonly string[], pidExpression: string): string[] {
  if (gpus.length === 0) return [];
  return [`lease_set ${pidExpression} ${gpuWords(gpus)}`];
}

export function setLeasesScript(owner: LeaseOwner, gpus: readonly string[], pid: number): string {
  return [leaseFunctions(owner), `lease_set ${pid} ${gpuWords(gpus)}`].join('\n');
}

/** Gives back `owner`'s leases on `gpus` (others' leases there are left alone). */
export function releaseLeasesScript(owner: LeaseOwner, gpus: readonly string[]): string {
  return [
    leaseFunctions(owner),
    `for g in ${gpuWords(gpus)}; do`,
    '  case " $(cat "$L/$g" 2>/dev/null) " in *" $OURS"*) rm -f "$L/$g" ;; esac',
    'done',
    'true',
  ].join('\n');
}

/** Prints `lease=GPU RECORD` for each live lease on the machine (probes read them with parseLeaseLines). */
export function listLeasesLines(): string[] {
  return [
    leaseFunctions(undefined),
    'for f in "$L"/*; do',
    '  [ -f "$f" ] || continue',
    '  lease_live "$f" && printf "lease=%s %s\\n" "${f##*/}" "$(cat "$f")"',
    'done',
  ];
}

export function listLeasesScript(): string {
  return [...listLeasesLines(), 'true'].join('\n');
}

/** Reads one record (the text after the GPU in a `held` or `lease=` line). */
export function parseLeaseRecord(gpu: string, record: string): GpuLease | undefined {
  const fields = new Map<string, string>();
  for (const part of record.trim().split(/\s+/)) {
    const at = part.indexOf('=');
    if (at > 0) fields.set(part.slice(0, at), part.slice(at + 1));
  }
  const number = (name: string) => Number(fields.get(name) ?? NaN);
  if (fields.get('v') !== '1' || !Number.isInteger(number('pid'))) return undefined;
  return {
    gpu,
    daemonId: fields.get('daemon') ?? '',
    user: fields.get('user') ?? 'unknown',
    machine: fields.get('machine') ?? 'unknown',
    jobId: number('job'),
    attempt: number('attempt'),
    pid: number('pid'),
    since: number('since'),
  };
}

/** The leases in a script's output: `lease=GPU RECORD` (a listing) or `held GPU RECORD` (a refusal). */
export function parseLeaseLines(output: string): GpuLease[] {
  const leases: GpuLease[] = [];
  for (const line of output.split('\n')) {
    const match = /^(?:lease=|held )(\S+) (.*)$/.exec(line);
    if (!match) continue;
    const lease = parseLeaseRecord(match[1]!, match[2]!);
    if (lease) leases.push(lease);
  }
  return leases;
}

/** The message of a `lease-error` line, if the output has one. */
export function leaseError(output: string): string | undefined {
  return /^lease-error (.*)$/m.exec(output)?.[1];
}

/** e.g. "alice's Drover on laptop (run 12) since 14:02:07". */
export function describeLease(lease: GpuLease): string {
  const since = Number.isFinite(lease.since) ? ` since ${new Date(lease.since * 1000).toISOString().slice(11, 19)} UTC` : '';
  return `${lease.user}'s Drover on ${lease.machine} (run ${lease.jobId})${since}`;
}

/** Runs a lease script on this machine (for the local host), with the daemon's environment. */
export function runLeaseScript(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-s'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(script);
  });
}

/** Takes leases on this machine for a run the daemon is about to start; the daemon's pid holds them until `setLeasesScript`. */
export async function takeLocalLeases(owner: LeaseOwner, gpus: readonly string[], env: NodeJS.ProcessEnv): Promise<{ held: GpuLease[] } | undefined> {
  const result = await runLeaseScript(takeLeasesScript(owner, gpus, String(process.pid)), env);
  if (result.code === 0) return undefined;
  const error = leaseError(result.stdout);
  if (error || result.code !== 3) throw new Error(error ?? (result.stderr.trim() || `the lease script ended with ${result.code}`));
  return { held: parseLeaseLines(result.stdout) };
}

/** The leases on a host's GPUs that another daemon holds, by GPU UUID. */
export function leasedByOthers(leases: readonly GpuLease[] | undefined, daemonId: string): Map<string, GpuLease> {
  return new Map((leases ?? []).filter((lease) => lease.daemonId !== daemonId).map((lease) => [lease.gpu, lease]));
}

/**
 * The "why pending" addition for a job that waits for GPUs while other daemons hold leases on
 * some: which GPU, on which host, held by whom. Empty when no lease is in the way.
 */
export function describeLeaseHolders(hosts: readonly { name: string; gpus: readonly { index: number; uuid: string }[]; leases: Map<string, GpuLease> }[]): string {
  const parts: string[] = [];
  for (const host of hosts) {
    for (const gpu of host.gpus) {
      const lease = host.leases.get(gpu.uuid);
      if (lease) parts.push(`GPU ${gpu.index} on ${host.name} is leased by ${describeLease(lease)}`);
    }
  }
  return parts.join('; ');
}

/** A host's known leases with those just found held replacing what was known of their GPUs. */
export function mergeLeases(known: readonly GpuLease[] | undefined, found: readonly GpuLease[]): GpuLease[] {
  const gpus = new Set(found.map((lease) => lease.gpu));
  return [...(known ?? []).filter((lease) => !gpus.has(lease.gpu)), ...found];
}
