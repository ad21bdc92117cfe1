/**
 * The reference point of issue 5: a plain Node.js NDJSON server that does the least this job
 * allows. It splits lines, `JSON.parse`s them, keeps values in one flat Map and answers with one
 * write per read: no validation, no namespaces, no TTL, no logging, no backpressure. Not a server
 * to use; a ceiling to measure caretkv against with the same generator:
 *
 *   npx tsx bench/plain-server.ts --port 7272 &
 *   node dist/cli.js bench --port 7272 --conns 50 --pipeline 16 --prefill
 */
import net from 'node:net';

const flag = process.argv.indexOf('--port');
const port = flag === -1 ? 7272 : Number(process.argv[flag + 1]);
const values = new Map<string, string>();

const server = net.createServer((socket) => {
  let rest = '';
  socket.on('data', (chunk: Buffer) => {
    const text = rest + chunk.toString();
    let out = '';
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      const req = JSON.parse(text.slice(start, end)) as { action: string; key: string; value?: unknown };
      start = end + 1;
      if (req.action === 'SET') {
        values.set(req.key, JSON.stringify(req.value));
        out += '{"ok":true,"result":true}\n';
      } else if (req.action === 'GET') {
        const value = values.get(req.key);
        out +=
          value === undefined
            ? '{"ok":false,"error":{"code":"KEY_NOT_FOUND","message":"no such key"}}\n'
            : `{"ok":true,"result":${value}}\n`;
      } else {
        out += '{"ok":true,"result":"PONG"}\n';
      }
    }
    rest = text.slice(start);
    if (out !== '') socket.write(out);
  });
  socket.on('error', () => {});
});
server.listen(port, '127.0.0.1', () => process.stderr.write(`plain server on 127.0.0.1:${port}\n`));
