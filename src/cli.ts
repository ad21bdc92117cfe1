#!/usr/bin/env -S node --max-semi-space-size=32
// The `caretkv` command. Node runs it with a 32 MB young generation (V8's default grows to 16 MB):
// a server that allocates per request scavenges half as often, which cut the p99 latency at
// pipeline 1 by about a fifth in docs/benchmarks.md, for at most 32 MB more memory under load.
// V8 reads the size only at start-up, so it must be given here (and in `npm start`; the bench
// starts servers with the flags of this line, and test/cli.test.ts checks that the two agree).
import { main } from './cli/main.js';

await main();
