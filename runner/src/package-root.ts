import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let root: string | undefined;

/** The folder of Drover's package.json, from the bundle in dist/ or the compiled files in out/. */
export function packageRoot(): string {
  if (root) return root;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'drover') return (root = dir);
    if (dirname(dir) === dir) throw new Error(`cannot find Drover's package.json above ${__dirname}`);
  }
}
