#!/usr/bin/env node
// `npm run dev:token -- <user id>`: a bearer token for any platform user of `npm run dev`, not
// only the printed demo users. The gateway creates nothing for a user id: the first
// `GET /api/calendly/connect` or `POST /api/calendly/token` with the token starts that user.
import devJwt from './lib/dev-jwt.cjs';

const userId = process.argv[2];
if (!userId || !/^[A-Za-z0-9._@:-]{1,128}$/.test(userId)) {
  process.stderr.write(
    'usage: npm run dev:token -- <user id>   (letters, digits and . _ @ : -, at most 128; e.g. npm run dev:token -- dave)\n',
  );
  process.exit(1);
}
process.stdout.write(`${devJwt.signDevJwt(userId, devJwt.devJwtSecret())}\n`);
