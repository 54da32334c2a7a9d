// The reference server of tests/bench/bench_ws.cpp: Node `ws` 8 echoing every message with
// its own opcode, as swactor's ws_echo does.
//
//   node ws_echo_server.js PORT [--deflate]
//
// --deflate accepts permessage-deflate with what matches ws_echo's defaults: messages from
// 64 B up are compressed (ws_echo's deflate_min_size), zlib's default level, 15-bit windows,
// context kept between messages. Prints "listening PORT" once it accepts connections.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  backlog: 4096,
  maxPayload: 16 << 20,  // ws_echo's default max_message_size
  // concurrencyLimit: ws runs zlib on its thread pool, at most 10 jobs at once by default;
  // left as shipped.
  perMessageDeflate: deflate ? { threshold: 64 } : false,
});
wss.on('connection', (ws) => {
  ws.on('message', (data, is_binary) => ws.send(data, { binary: is_binary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`listening ${wss.address().port}`));
process.on('SIGTERM', () => process.exit(0));
