import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';
import SpecWithSummary from '../../support/reporter';

/**
 * The extension tests' entry point (VS Code's `extensionTestsPath`): runs in the extension host,
 * where `vscode` is importable, and loads every `*.vstest.js` beside it. Not `*.test.js`, which is
 * what the plain mocha run picks up and where `vscode` does not exist. A new test file is all it
 * takes to add tests.
 */
export async function run(): Promise<void> {
  const only = process.env.DROVER_VSCODE_GREP;
  const mocha = new Mocha({ ui: 'bdd', timeout: 60_000, color: false, reporter: SpecWithSummary, ...(only ? { grep: only } : {}) });
  const files = fs.readdirSync(__dirname).filter((name) => name.endsWith('.vstest.js')).sort();
  for (const file of files) mocha.addFile(path.join(__dirname, file));

  const failures = await new Promise<number>((resolve, reject) => {
    try {
      mocha.run(resolve);
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
  if (files.length === 0) throw new Error(`no *.vstest.js files in ${__dirname}`);
  if (failures > 0) throw new Error(`${failures} extension test${failures === 1 ? '' : 's'} failed`);
}
