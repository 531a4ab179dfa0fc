#!/usr/bin/env node
'use strict';
// Speaks LSP over stdio (`--stdio`), node IPC or a pipe, as vscode-languageserver's argument parsing decides.
require('../dist/language-server.js');
