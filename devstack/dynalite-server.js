#!/usr/bin/env node
// dynalite's own CLI, made to survive clients that vanish mid-request.
//
// dynalite rethrows a request's 'error' event ("aborted", ECONNRESET) as an
// uncaught exception, so one client SIGKILLed in the middle of a write (a
// crashed loader, a killed worker) takes the whole local DynamoDB down with
// all its data. Those errors concern one connection only: log and go on.
// Anything else still ends the process, as before.
'use strict'

const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

process.on('uncaughtException', (err) => {
  if (err && (CLIENT_GONE.has(err.code) || err.message === 'aborted')) {
    console.error(`dynalite: a client went away mid-request (${err.code || err.message}); continuing`)
    return
  }
  console.error(err)
  process.exit(1)
})

// The options localstack passes: --port N, --host H, --path DIR (dynalite's own names).
const argv = {}
const args = process.argv.slice(2)
for (let i = 0; i < args.length; i += 2) {
  if (!args[i].startsWith('--') || args[i + 1] === undefined) {
    console.error(`usage: dynalite-server.js [--port N] [--host H] [--path DIR]; got ${args[i]}`)
    process.exit(2)
  }
  argv[args[i].slice(2)] = args[i + 1]
}
const server = require('dynalite')(argv).listen(argv.port || 4567, argv.host || undefined, () => {
  const address = server.address()
  console.log('Dynalite listening at: %s://%s:%s', argv.ssl ? 'https' : 'http', argv.host || 'localhost', address.port)
})
