import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { productionJwtSecretProblem } from './jwt-secret-policy';

// Every value written next to a name with "secret" in it, anywhere in the repository: a key in
// YAML or an object, an assignment, a `|| 'fallback'`. Whatever it is for, it is public, so a
// production gateway must refuse it as its JWT secret.
const repoRoot = join(__dirname, '..', '..', '..', '..');
const secretValue = /\w*secret\w*["']?\s*(?:[:=]|\|\|)\s*["'`]?([^"'`\s,;)}\]]{16,})/gi;
const scanned = /\.(ts|js|mjs|cjs|ya?ml|md|sh|json)$/;

function publishedValues(): Map<string, string> {
  const files = execFileSync('git', ['ls-files'], { cwd: repoRoot, encoding: 'utf8' })
    .split('\n')
    .filter((file) => scanned.test(file) && !file.endsWith('package-lock.json'));
  const found = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(join(repoRoot, file), 'utf8');
    } catch {
      continue; // listed but not checked out
    }
    for (const match of text.matchAll(secretValue)) {
      const value = match[1]!;
      // Code that computes a secret (a call, a variable) is not a secret written down.
      if (/^[A-Za-z_$][\w$.]*$/.test(value) && !/[-_]/.test(value)) continue;
      if (!found.has(value)) found.set(value, file);
    }
  }
  return found;
}

test('every secret written in this repository is refused as a production JWT secret', () => {
  const values = publishedValues();
  expect(values.size).toBeGreaterThan(3);
  expect(values.get('calsync-dev-jwt-secret-change-me')).toBeDefined();
  const accepted = [...values].filter(([value]) => productionJwtSecretProblem(value) === undefined);
  expect(accepted.map(([value, file]) => `${file}: ${value}`)).toEqual([]);
});
