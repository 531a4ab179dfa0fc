// @ts-check
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const webpack = require('webpack');
const { version } = require('./package.json');

/** Files a bundle loads at run time, copied next to it. */
class CopyBesideBundle {
  /** @param {string[]} files */
  constructor(files) {
    this.files = files;
  }

  /** @param {import('webpack').Compiler} compiler */
  apply(compiler) {
    compiler.hooks.afterEmit.tap('CopyBesideBundle', () => {
      for (const file of this.files) fs.copyFileSync(path.resolve(__dirname, file), path.join(compiler.options.output.path ?? 'dist', path.basename(file)));
    });
  }
}

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
    plugins: [new webpack.DefinePlugin({ __DROVER_VERSION__: JSON.stringify(version) }), ...(extra.plugins ?? [])],
  };
}

/**
 * The notebook output renderer for cell metrics: browser code loaded by VS Code's notebook webview
 * as an ES module (contributes.notebookRenderer in package.json).
 */
const notebookRenderer = {
  name: 'notebook-metrics-renderer',
  target: 'web',
  entry: { 'notebook-metrics-renderer': './extension/notebook-renderer/metrics-renderer.ts' },
  output: { path: path.resolve(__dirname, 'dist'), filename: '[name].js', library: { type: 'module' }, clean: false },
  experiments: { outputModule: true },
  resolve: { extensions: ['.ts', '.js'] },
  module: nodeBundle('renderer', './extension/notebook-renderer/metrics-renderer.ts').module,
  devtool: false,
  performance: { hints: false },
};

/**
 * The dashboards' webview bundle: a browser page, so no Node built-ins; its style sheets are
 * copied beside it and loaded through <link> (the webview's CSP allows no inline styles).
 * @returns {import('webpack').Configuration}
 */
function webviewBundle() {
  return {
    name: 'webviews',
    target: 'web',
    entry: { dashboard: './webviews/src/main.ts' },
    output: { path: path.resolve(__dirname, 'dist', 'webviews'), filename: '[name].js', clean: false },
    resolve: { extensions: ['.ts', '.js'] },
    module: {
      rules: [{ test: /\.ts$/, exclude: /node_modules/, use: { loader: 'ts-loader', options: { transpileOnly: true, configFile: path.resolve(__dirname, 'tsconfig.base.json'), compilerOptions: { composite: false, declaration: false, module: 'es2022', moduleResolution: 'bundler', lib: ['ES2022', 'DOM'] } } } }],
    },
    devtool: 'source-map',
    performance: { hints: false },
    plugins: [new CopyBesideBundle(['webviews/media/dashboard.css', 'node_modules/uplot/dist/uPlot.min.css'])],
  };
}

module.exports = [
  notebookRenderer,
  webviewBundle(),
  nodeBundle('extension', './extension/src/extension.ts', {
    externals: { vscode: 'commonjs vscode' },
    // The clock for the activation time the extension reports (and the benchmark prints).
    plugins: [new webpack.BannerPlugin({ banner: 'globalThis.__droverBundleStart = performance.now();', raw: true, entryOnly: true })],
  }),
  // Written in ASCII only (other characters escaped): V8 then holds the bundle's source, which stays
  // in memory for its lazily compiled functions, at one byte per character rather than two.
  nodeBundle('language-server', './language-server/src/server.ts', {
    optimization: { minimizeOptions: { javascript: { compress: { passes: 2 }, format: { ascii_only: true } } } },
  }),
  nodeBundle('drover', './runner/src/cli/main.ts'),
  // SQLite as WebAssembly: no native module, so the same bundle runs in VS Code's runtime everywhere.
  nodeBundle('launcher', './runner/src/local/launcher.ts'),
  nodeBundle('daemon', './runner/src/daemon/main.ts', {
    plugins: [
      new CopyBesideBundle(['node_modules/node-sqlite3-wasm/dist/node-sqlite3-wasm.wasm']),
      // ssh2's optional native speed-ups are left out: it falls back to Node's own crypto, so the
      // daemon stays one platform-independent bundle (see the README's note on native modules).
      new webpack.IgnorePlugin({ resourceRegExp: /^cpu-features$|\.node$/ }),
    ],
  }),
];
