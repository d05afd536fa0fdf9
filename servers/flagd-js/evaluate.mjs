// Evaluate a flagd flag file with the official JavaScript evaluator (@openfeature/flagd-core).
// stdin: {"file": "<flag file text>", "flag": "<key>", "contexts": [{"targetingKey": "...", ...}, ...]}
// stdout: {"version": "<flagd-core version>", "variants": ["<variant or null>", ...]}
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { FlagdCore } from '@openfeature/flagd-core';

const require = createRequire(import.meta.url);
const version = require('@openfeature/flagd-core/package.json').version;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const input = JSON.parse(readFileSync(0, 'utf8'));
const core = new FlagdCore(undefined, quiet);
core.setConfigurations(input.file);
const variants = input.contexts.map((ctx) => {
  const result = core.resolveObjectEvaluation(input.flag, {}, ctx, quiet);
  return result.variant ?? null;
});
process.stdout.write(JSON.stringify({ version, variants }));
