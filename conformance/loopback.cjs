// Preloaded into the test suite's origin server (node --require loopback.cjs server/server.mjs).
// server/server.mjs calls server.listen(port) with no host, which binds every interface; this makes a
// listen() given only a port (and maybe a callback) bind 127.0.0.1 instead, so the origin is reachable
// from this machine only. Everything else is left as the suite wrote it.
'use strict'
const net = require('net')

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const portOnly = typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))
  if (portOnly && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, '127.0.0.1')
  }
  return listen.apply(this, args)
}
