// Serves the local broker's OAUTHBEARER JWKS (made by secure.sh) on 127.0.0.1. The broker
// fetches it when it starts and fails to start if it cannot, so up.sh starts this first.
// Usage: node jwks-server.mjs <port> <jwks.json>
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const [port, file] = process.argv.slice(2);
const body = readFileSync(file);
createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/jwks.json') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  } else {
    res.writeHead(404).end();
  }
}).listen(Number(port), '127.0.0.1');
