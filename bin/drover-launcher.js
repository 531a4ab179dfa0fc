#!/usr/bin/env node
'use strict';
// Started by the daemon: spawns its attempts (see runner/src/local/launcher.ts).
require('../dist/launcher.js').runLauncher();
