// @ts-check
'use strict';
const path = require('node:path');

/**
 * One bundle per process Drover ships. Type checking is `tsc -b`'s job; webpack only
 * transpiles, so both can run in parallel under `npm run watch`.
 * @param {string} name
 * @param {string} entry
 * @param {Partial<import('webpack').Configuration>} extra
 * @returns {import('webpack').Configuration}
 */
function nodeBundle(name, entry, extra = {}) {
  return {
    name,
    target: 'node20',
    entry: { [name]: entry },
    output: { path: path.resolve(__dirname, 'dist'), filename: '[name].js', libraryTarget: 'commonjs2', clean: false },
    // Keep real __dirname so bundles find package files (package.json, the schema) next to them.
    node: { __dirname: false, __filename: false },
    resolve: { extensions: ['.ts', '.js'] },
    module: {
      rules: [{ test: /\.ts$/, exclude: /node_modules/, use: { loader: 'ts-loader', options: { transpileOnly: true, configFile: path.resolve(__dirname, 'tsconfig.base.json'), compilerOptions: { composite: false, declaration: false, module: 'es2022', moduleResolution: 'bundler' } } } }],
    },
    devtool: 'source-map',
    performance: { hints: false },
    ...extra,
  };
}

module.exports = [
  nodeBundle('extension', './extension/src/extension.ts', { externals: { vscode: 'commonjs vscode' } }),
  nodeBundle('language-server', './language-server/src/server.ts'),
  nodeBundle('drover', './runner/src/cli/main.ts'),
];
