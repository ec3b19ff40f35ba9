// The path of the CUDA build this package carries; lmcl's loader (src/native/load.ts) requires it.
// The binary is not loaded here, so a failure to load it is reported by lmcl, which then falls
// back to its CPU prebuild.
'use strict';
module.exports = require('node:path').join(__dirname, 'lmcl.node');
