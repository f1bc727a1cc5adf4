// The live heap of a running Node process, from the process itself: SIGUSR1 opens its inspector
// (the process must have been started with --inspect-port=127.0.0.1:0, so it listens on a free
// loopback port and only when asked), and the DevTools protocol then forces full garbage
// collections and reads V8's heap statistics. Node 20 has no WebSocket client, so this speaks
// the little of RFC 6455 the inspector needs: masked text frames out, unmasked frames in.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';

/**
 * Sends SIGUSR1 and resolves a connection to the inspector; `urlSeen()` returns the ws:// URL
 * once the process has logged `Debugger listening on ws://...` (see inspectorUrlOf), else undefined.
 */
export async function openInspectorOf(child, urlSeen, timeoutMs = 10_000) {
  if (!urlSeen()) child.kill('SIGUSR1');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const url = urlSeen();
    if (url) return connect(url);
    if (Date.now() > deadline) throw new Error('the process opened no inspector after SIGUSR1');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The inspector URL a log line announces, or undefined. */
export const inspectorUrlOf = (line) => /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1];

async function connect(wsUrl) {
  const url = new URL(wsUrl);
  const socket = await new Promise((resolve, reject) => {
    const upgrade = request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        'Sec-WebSocket-Version': '13',
      },
    });
    upgrade.on('upgrade', (_response, upgraded, head) => {
      if (head.length > 0) upgraded.unshift(head);
      resolve(upgraded);
    });
    upgrade.on('response', (response) => reject(new Error(`inspector answered HTTP ${response.statusCode}`)));
    upgrade.on('error', reject);
    upgrade.end();
  });
  const pending = new Map();
  let nextId = 1;
  let buffered = Buffer.alloc(0);
  let fragments = [];
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      if (buffered.length < 2) return;
      const fin = (buffered[0] & 0x80) !== 0;
      const opcode = buffered[0] & 0x0f;
      let length = buffered[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        length = Number(buffered.readBigUInt64BE(2));
        offset = 10;
      }
      if (buffered.length < offset + length) return;
      const payload = buffered.subarray(offset, offset + length);
      buffered = buffered.subarray(offset + length);
      if (opcode !== 0 && opcode !== 1) continue;
      fragments.push(payload);
      if (!fin) continue;
      const message = JSON.parse(Buffer.concat(fragments).toString('utf8'));
      fragments = [];
      const waiting = message.id === undefined ? undefined : pending.get(message.id);
      if (!waiting) continue;
      pending.delete(message.id);
      if (message.error) waiting.reject(new Error(`inspector: ${message.error.message}`));
      else waiting.resolve(message.result);
    }
  });
  const failAll = (error) => {
    for (const waiting of pending.values()) waiting.reject(error);
    pending.clear();
  };
  socket.on('error', failAll);
  socket.on('close', () => failAll(new Error('inspector connection closed')));

  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      const payload = Buffer.from(JSON.stringify({ id, method, params }));
      const header =
        payload.length < 126
          ? Buffer.from([0x81, 0x80 | payload.length])
          : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
      const mask = randomBytes(4);
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      socket.write(Buffer.concat([header, mask, payload]));
    });
  /** Evaluates an expression in the process's main context (with Node's `require`); resolves its JSON value. */
  const evaluate = async (expression) => {
    const { result, exceptionDetails } = await send('Runtime.evaluate', {
      expression: `JSON.stringify(${expression})`,
      includeCommandLineAPI: true,
      returnByValue: true,
    });
    if (exceptionDetails) throw new Error(`inspector: ${exceptionDetails.text}`);
    return JSON.parse(result.value);
  };
  return {
    evaluate,
    /** V8's heap now: used and total, and per space (used / committed), in bytes. */
    heap: () =>
      evaluate(
        `(() => { const v8 = require('v8'); const h = v8.getHeapStatistics(); const m = process.memoryUsage();
          return { used: h.used_heap_size, total: h.total_heap_size, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss,
            spaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { used: s.space_used_size, size: s.space_size }])) }; })()`,
      ),
    /** Full, compacting collections until nothing more goes: what is left is live. */
    collectGarbage: async () => {
      await send('HeapProfiler.collectGarbage');
      await send('HeapProfiler.collectGarbage');
    },
    close: () => socket.destroy(),
  };
}
