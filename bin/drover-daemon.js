#!/usr/bin/env node
'use strict';
require('../dist/daemon.js').run().catch((error) => {
  console.error(`drover daemon: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
});
