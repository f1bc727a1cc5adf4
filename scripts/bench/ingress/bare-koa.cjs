// The baseline of the ingress bench: a Koa app with one route that reads the request body and
// answers 200, nothing else (no verification, no publish, no logging). Run as its own process,
// like the gateway, and writes the same `ready` line so the bench waits for it the same way.
'use strict';
const { createServer } = require('node:http');
const Koa = require('koa');
const Router = require('@koa/router');

const app = new Koa();
const router = new Router();
router.post('/webhooks/calendly/:hookId', async (ctx) => {
  let bytes = 0;
  for await (const chunk of ctx.req) bytes += chunk.length;
  ctx.body = { status: 'stored', bytes };
});
app.use(router.routes());

const server = createServer(app.callback());
server.listen(Number(process.env.HTTP_PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'ready', httpPort: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
