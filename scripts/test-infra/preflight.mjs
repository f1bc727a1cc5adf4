// `npm test` runs this first: every missing prerequisite on one line each, before anything builds.
import prerequisites from '../lib/prerequisites.cjs';

const missing = prerequisites.missingPrerequisites('test');
for (const line of missing) process.stderr.write(`npm test cannot run: ${line}\n`);
process.exit(missing.length > 0 ? 1 : 0);
