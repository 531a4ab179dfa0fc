#!/usr/bin/env node
'use strict';
require('../dist/drover.js').run();
