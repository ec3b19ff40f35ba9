#!/usr/bin/env node
// The `lmcl` command: runs the compiled CLI (npm install / npm run build produce dist/).
import { main } from '../dist/src/cli/main.js';

await main(process.argv);
