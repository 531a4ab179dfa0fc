// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Import specifiers that reach into a part of the project. */
const part = (name) => [`**/${name}`, `**/${name}/**`];
const NODE_BUILTINS = ['node:*', 'fs', 'path', 'os', 'child_process', 'net', 'crypto', 'util', 'events', 'stream'];

/**
 * The layering, enforced: `common/` imports nothing of the other parts; its spec model and
 * protocol import nothing of Node either, so webviews can use them, while `common/node/` holds
 * what the Node-side parts share; the runner and the language server never import VS Code;
 * nothing imports tests.
 */
function layer(files, forbidden, message) {
  return {
    files,
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: forbidden, message }] }],
    },
  };
}

export default tseslint.config(
  { ignores: ['node_modules/', 'out/', 'dist/', 'examples/', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', process: 'readonly', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  layer(
    ['common/spec/**/*.ts', 'common/protocol/**/*.ts'],
    [...part('runner'), ...part('extension'), ...part('language-server'), ...part('webviews'), ...part('test'), ...part('node'), 'vscode', 'vscode-languageserver*', 'vscode-languageclient*', ...NODE_BUILTINS],
    'The spec model and the protocol are shared by every part (the webviews too): they import no other part, no VS Code and no Node built-ins.',
  ),
  layer(
    ['common/node/**/*.ts'],
    [...part('runner'), ...part('extension'), ...part('language-server'), ...part('webviews'), ...part('test'), 'vscode', 'vscode-languageserver*', 'vscode-languageclient*'],
    'common/node/ is what the Node-side parts share (the daemon client): it imports no other part and no VS Code.',
  ),
  layer(
    ['runner/**/*.ts'],
    [...part('extension'), ...part('language-server'), ...part('webviews'), ...part('test'), 'vscode', 'vscode-languageclient*'],
    'The runner is a client-free daemon and CLI: it imports only common/.',
  ),
  layer(
    ['language-server/**/*.ts'],
    [...part('extension'), ...part('runner'), ...part('webviews'), ...part('test'), 'vscode', 'vscode-languageclient*'],
    'The language server runs outside VS Code and talks to the daemon over the protocol in common/.',
  ),
  layer(
    ['extension/**/*.ts'],
    [...part('runner'), ...part('language-server'), ...part('webviews'), ...part('test'), 'vscode-languageserver', 'vscode-languageserver/*'],
    'The extension reaches the daemon and the language server through their protocols, never their code.',
  ),
  layer(
    ['extension/notebook-renderer/**/*.ts'],
    [...part('runner'), ...part('language-server'), ...part('webviews'), ...part('test'), ...part('src'), ...part('node'), 'vscode', ...NODE_BUILTINS],
    "The notebook renderer runs in the notebook's webview: it imports only common/ and talks to the extension by messages.",
  ),
  layer(
    ['webviews/**/*.ts'],
    [...part('runner'), ...part('extension'), ...part('language-server'), ...part('test'), ...part('node'), 'vscode', ...NODE_BUILTINS],
    'Webviews run in a browser sandbox: they import only common/ and talk to the extension by messages.',
  ),
);
