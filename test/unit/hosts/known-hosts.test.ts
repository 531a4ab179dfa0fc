import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkHostKey, fingerprint, hashHostName, keyTypeOf, knownHostsLine, knownKeyTypes, parseKnownHosts } from '../../../runner/src/hosts/ssh/known-hosts';

// Real keys, with the fingerprints `ssh-keygen -lf` printed for them.
const K1 = 'AAAAC3NzaC1lZDI1NTE5AAAAIFsD66sDwmA8jH9HS/fC+fqyz1bB4newwoMP4hbH31UG';
const K1_FP = 'SHA256:JcTljkn9/uxfYY0MIQqVIrUh/a3/Sgb6eVb8fET/Ti4';
const K2 = 'AAAAC3NzaC1lZDI1NTE5AAAAIMKsKzz2/mgkH44RtTf/sS+wNmR2bGBDiut3st8DsS1t';
const K2_FP = 'SHA256:k/gOEz/6zVDvSN3lyNF7Vd0eY6IdsiPryHAnuYDgR50';
const K3 = 'AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBN6apxbx9FLocO7ZE4qNmqO6G7qqoL9qPqkb0E5IkM198xkEgFCzO8ufLLYFcGNijMd7dyxFMhuN/AmDaCaXEbc=';
const K3_FP = 'SHA256:lsylUbKHmZ4XKDTra+25+RLRaWHMKSm0BA65BWlwWQA';
const blob = (base64: string) => Buffer.from(base64, 'base64');

describe('known_hosts', () => {
  let dir: string;
  let n = 0;

  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'drover-known-hosts-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function file(...lines: string[]): string {
    const name = path.join(dir, `known_hosts${++n}`);
    writeFileSync(name, `${lines.join('\n')}\n`);
    return name;
  }

  const check = (files: string[], host: string, key: string, port = 22) => checkHostKey({ files, host, port, key: blob(key) });

  it('prints fingerprints exactly like ssh-keygen -l, and reads the key type from the blob', () => {
    assert.equal(fingerprint(blob(K1)), K1_FP);
    assert.equal(fingerprint(blob(K2)), K2_FP);
    assert.equal(fingerprint(blob(K3)), K3_FP);
    assert.equal(keyTypeOf(blob(K1)), 'ssh-ed25519');
    assert.equal(keyTypeOf(blob(K3)), 'ecdsa-sha2-nistp256');
    assert.equal(keyTypeOf(Buffer.from([0, 0])), 'unknown');
  });

  it('knows a host from a plain entry, by name or in a comma list, case-insensitively', () => {
    const files = [file(`gpu1.lab,10.0.0.5 ssh-ed25519 ${K1} some comment`)];
    assert.deepEqual(check(files, 'gpu1.lab', K1), { status: 'known', fingerprint: K1_FP, keyType: 'ssh-ed25519' });
    assert.equal(check(files, '10.0.0.5', K1).status, 'known');
    assert.equal(check(files, 'GPU1.lab', K1).status, 'known');
    assert.equal(check(files, 'gpu2.lab', K1).status, 'unknown');
  });

  it('uses the [host]:port form for ports other than 22, and only it', () => {
    const files = [file(`[gpu1.lab]:2222 ssh-ed25519 ${K1}`, `gpu2.lab ssh-ed25519 ${K2}`)];
    assert.equal(check(files, 'gpu1.lab', K1, 2222).status, 'known');
    assert.equal(check(files, 'gpu1.lab', K1, 22).status, 'unknown');
    assert.equal(check(files, 'gpu2.lab', K2, 2222).status, 'unknown');
    assert.equal(check([file(`[gpu3.lab]:22 ssh-ed25519 ${K1}`)], 'gpu3.lab', K1).status, 'unknown', 'port 22 is never bracketed');
  });

  it('matches wildcards and honours negation', () => {
    const files = [file(`*.lab,!secret.lab ssh-ed25519 ${K1}`, `node?? ssh-ed25519 ${K2}`)];
    assert.equal(check(files, 'gpu7.lab', K1).status, 'known');
    assert.equal(check(files, 'secret.lab', K1).status, 'unknown');
    assert.equal(check(files, 'node12', K2).status, 'known');
    assert.equal(check(files, 'node1', K2).status, 'unknown', '? is exactly one character');
    assert.equal(check([file(`[*.lab]:2222 ssh-ed25519 ${K1}`)], 'x.lab', K1, 2222).status, 'known');
  });

  it('matches hashed entries (HMAC-SHA1 of the name, [host]:port for other ports)', () => {
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('10.0.0.9').digest('base64')}`;
    assert.equal(hashHostName('10.0.0.9', salt), hashed);
    const files = [file(`${hashed} ssh-ed25519 ${K1}`, `${hashHostName('[10.0.0.9]:2200', randomBytes(20))} ssh-ed25519 ${K2}`)];
    assert.equal(check(files, '10.0.0.9', K1).status, 'known');
    assert.equal(check(files, '10.0.0.8', K1).status, 'unknown');
    assert.equal(check(files, '10.0.0.9', K2, 2200).status, 'known');
    assert.equal(check(files, '10.0.0.9', K2).status, 'changed');
  });

  it('reports a changed key with the file:line of the entry it contradicts', () => {
    const known = file('# my hosts', '', `other ssh-ed25519 ${K2}`, `gpu1 ssh-ed25519 ${K1}`);
    assert.deepEqual(check([known], 'gpu1', K2), { status: 'changed', fingerprint: K2_FP, keyType: 'ssh-ed25519', knownAt: `${known}:4` });
  });

  it('calls a key of a type not recorded for the host unknown, naming the known types', () => {
    const known = file(`gpu1 ssh-ed25519 ${K1}`);
    assert.deepEqual(check([known], 'gpu1', K3), { status: 'unknown', fingerprint: K3_FP, keyType: 'ecdsa-sha2-nistp256', otherKeyTypes: ['ssh-ed25519'] });
    assert.deepEqual(knownKeyTypes([known], 'gpu1', 22), ['ssh-ed25519']);
    assert.deepEqual(knownKeyTypes([known], 'gpu2', 22), []);
  });

  it('accepts a key recorded next to another of the same type (several entries)', () => {
    const files = [file(`gpu1 ssh-ed25519 ${K1}`), file(`gpu1 ssh-ed25519 ${K2}`)];
    assert.equal(check(files, 'gpu1', K2).status, 'known');
  });

  it('refuses a @revoked key, even when it is also listed as known', () => {
    const known = file(`gpu1 ssh-ed25519 ${K1}`, `@revoked * ssh-ed25519 ${K1}`);
    assert.deepEqual(check([known], 'gpu1', K1), { status: 'revoked', fingerprint: K1_FP, keyType: 'ssh-ed25519', revokedAt: `${known}:2` });
    assert.equal(check([known], 'gpu1', K2).status, 'changed');
  });

  it('ignores @cert-authority lines, comments, blank and malformed lines', () => {
    const known = file(
      `@cert-authority *.lab ssh-ed25519 ${K1}`,
      '   # indented comment',
      '',
      'gpu1',
      'gpu1 ssh-ed25519',
      'gpu1 ssh-ed25519 !!notbase64!!',
      `gpu1 ssh-rsa ${K1}`, // the blob says ed25519
      'gpu1 2048 35 1234567', // SSH1 RSA
      `@bogus gpu1 ssh-ed25519 ${K1}`,
      `\tgpu2   ssh-ed25519   ${K2}  trailing comment words`,
    );
    assert.equal(check([known], 'x.lab', K1).status, 'unknown');
    assert.equal(check([known], 'gpu1', K1).status, 'unknown');
    assert.equal(check([known], 'gpu2', K2).status, 'known');
    assert.deepEqual(parseKnownHosts(`gpu2 ssh-ed25519 ${K2}\r\nbad line\r\n`, 'f').map((e) => [e.hosts, e.line]), [['gpu2', 1]]);
  });

  it('treats missing files as empty', () => {
    assert.equal(check([path.join(dir, 'nope'), file(`gpu1 ssh-ed25519 ${K1}`)], 'gpu1', K1).status, 'known');
    assert.equal(check([], 'gpu1', K1).status, 'unknown');
  });

  it('writes lines that read back as known', () => {
    const known = file(knownHostsLine('Gpu1', 2222, blob(K1)).trimEnd(), knownHostsLine('gpu2', 22, blob(K3)).trimEnd());
    assert.equal(check([known], 'gpu1', K1, 2222).status, 'known');
    assert.equal(check([known], 'gpu2', K3).status, 'known');
  });
});
