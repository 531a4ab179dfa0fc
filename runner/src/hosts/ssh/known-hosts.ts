/**
 * known_hosts checking as OpenSSH does it (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain,
 * bracketed `[host]:port`, comma lists, `*`/`?` wildcards, `!` negation, hashed `|1|salt|hmac`
 * names, `@revoked` keys; `@cert-authority` lines are not host keys and are skipped.
 */
import { createHash, createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import { matchPattern } from './ssh-config';

export type HostKeyCheck =
  | { status: 'known'; fingerprint: string; keyType: string }
  | { status: 'unknown'; fingerprint: string; keyType: string; /** key types already known for the host */ otherKeyTypes: string[] }
  | { status: 'changed'; fingerprint: string; keyType: string; /** "file:line" of the entry that no longer matches */ knownAt: string }
  | { status: 'revoked'; fingerprint: string; keyType: string; revokedAt: string };

export interface HostKeyQuery {
  files: string[];
  host: string;
  port: number;
  /** The raw public key blob (what ssh2 gives a hostVerifier). */
  key: Buffer;
}

export interface KnownHostEntry {
  file: string;
  line: number;
  marker: 'revoked' | undefined;
  /** The host field as written (a pattern list, or one hashed name). */
  hosts: string;
  keyType: string;
  key: Buffer;
}

/** OpenSSH's `SHA256:…` fingerprint: unpadded base64 of the blob's SHA-256. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named at the start of an SSH public key blob ("ssh-ed25519", …). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const length = key.readUInt32BE(0);
  if (length === 0 || length > 64 || key.length < 4 + length) return 'unknown';
  return key.subarray(4, 4 + length).toString('latin1');
}

/** The name a host is recorded under: `host` on port 22, `[host]:port` elsewhere. */
export function knownHostsName(host: string, port: number): string {
  const lower = host.toLowerCase();
  return port === 22 ? lower : `[${lower}]:${port}`;
}

export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]!.startsWith('@')) {
      const name = fields.shift()!;
      if (name === '@cert-authority') return; // CA keys sign host certificates; not host keys
      if (name !== '@revoked') return; // unknown marker: OpenSSH skips the line
      marker = 'revoked';
    }
    const [hosts, keyType, base64] = fields;
    if (hosts === undefined || keyType === undefined || base64 === undefined) return;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return;
    const key = Buffer.from(base64, 'base64');
    // A blob that does not name the type its line states is corrupt (or an SSH1 "bits e n" key).
    if (keyTypeOf(key) !== keyType) return;
    entries.push({ file, line: index + 1, marker, hosts, keyType, key });
  });
  return entries;
}

/** Whether an entry's host field names `name` (already `[host]:port` for other ports). */
export function hostFieldMatches(hosts: string, name: string): boolean {
  if (hosts.startsWith('|1|')) {
    const [, , salt, hash] = hosts.split('|');
    if (salt === undefined || hash === undefined) return false;
    const expected = Buffer.from(hash, 'base64');
    const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
    return expected.length === actual.length && expected.equals(actual);
  }
  let matched = false;
  for (const raw of hosts.split(',')) {
    const negate = raw.startsWith('!');
    const pattern = negate ? raw.slice(1) : raw;
    if (matchPattern(pattern, name, true)) {
      if (negate) return false;
      matched = true;
    }
  }
  return matched;
}

/** HMAC-SHA1 hashed host field, as `ssh-keygen -H` and HashKnownHosts write it. */
export function hashHostName(name: string, salt: Buffer): string {
  const hash = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${salt.toString('base64')}|${hash}`;
}

export function readKnownHostsFiles(files: string[]): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // missing or unreadable: ssh skips it too
    }
    entries.push(...parseKnownHosts(text, file));
  }
  return entries;
}

/** The entries (@revoked ones included) whose host field names host:port. */
export function entriesFor(entries: KnownHostEntry[], host: string, port: number): KnownHostEntry[] {
  const name = knownHostsName(host, port);
  return entries.filter((entry) => hostFieldMatches(entry.hosts, name));
}

export function checkHostKey(query: HostKeyQuery): HostKeyCheck {
  const keyType = keyTypeOf(query.key);
  const print = fingerprint(query.key);
  const entries = entriesFor(readKnownHostsFiles(query.files), query.host, query.port);

  const revoked = entries.find((entry) => entry.marker === 'revoked' && entry.key.equals(query.key));
  if (revoked) return { status: 'revoked', fingerprint: print, keyType, revokedAt: `${revoked.file}:${revoked.line}` };

  const hostKeys = entries.filter((entry) => entry.marker === undefined);
  if (hostKeys.some((entry) => entry.key.equals(query.key))) return { status: 'known', fingerprint: print, keyType };

  const sameType = hostKeys.find((entry) => entry.keyType === keyType);
  if (sameType) return { status: 'changed', fingerprint: print, keyType, knownAt: `${sameType.file}:${sameType.line}` };

  return { status: 'unknown', fingerprint: print, keyType, otherKeyTypes: [...new Set(hostKeys.map((entry) => entry.keyType))] };
}

/** Key types recorded for host:port, so a client can ask the server for one it can verify. */
export function knownKeyTypes(files: string[], host: string, port: number): string[] {
  const entries = entriesFor(readKnownHostsFiles(files), host, port).filter((entry) => entry.marker === undefined);
  return [...new Set(entries.map((entry) => entry.keyType))];
}

/** One known_hosts line for a newly accepted key (StrictHostKeyChecking accept-new). */
export function knownHostsLine(host: string, port: number, key: Buffer): string {
  return `${knownHostsName(host, port)} ${keyTypeOf(key)} ${key.toString('base64')}\n`;
}
