#!/usr/bin/env node
// dynalite's own CLI, made to survive clients that vanish mid-request.
//
// Upstream: https://github.com/architect/dynalite/issues/183 ("any request error takes down the
// whole database", open). dynalite's httpHandler (index.js, checked in dynalite 4.0.0, the version
// package-lock.json pins) registers `req.on('error', function (err) { throw err })`. When a client
// is killed in the middle of a request body (a SIGKILLed loader or worker), Node's HTTP server
// destroys that request with Error('aborted') code ECONNRESET; the rethrow makes it an uncaught
// exception and the whole local DynamoDB exits, with every table of every other client.
//
// The workaround wraps only that listener, on each request: the request-aborted error of that one
// request is logged and dropped (the client is gone; nobody is left to answer). Any other error
// still reaches dynalite's listener, is rethrown and ends the process as before. There is no
// process-wide uncaughtException handler. When dynalite is not the checked version, or no longer
// registers a request 'error' listener, the launcher refuses to run: recheck issue 183 first.
'use strict'

const CHECKED_VERSION = '4.0.0'

const installed = require('dynalite/package.json').version
if (installed !== CHECKED_VERSION) {
  console.error(`dynalite-server.js: written against dynalite ${CHECKED_VERSION} (architect/dynalite#183), ` +
    `found ${installed}. Check whether index.js still rethrows request errors, then update CHECKED_VERSION.`)
  process.exit(3)
}

// Exactly what Node's HTTP server emits on a request whose client went away before the body ended
// (connResetException('aborted') in lib/_http_server.js abortIncoming).
function requestAborted (err) {
  return err instanceof Error && err.code === 'ECONNRESET' && err.message === 'aborted'
}

function surviveAbortedRequests (server) {
  const handlers = server.listeners('request')
  if (handlers.length !== 1) {
    throw new Error(`dynalite registered ${handlers.length} request handlers, expected 1 (architect/dynalite#183)`)
  }
  const [dynaliteHandler] = handlers
  server.removeListener('request', dynaliteHandler)
  server.on('request', (req, res) => {
    const before = new Set(req.listeners('error'))
    dynaliteHandler(req, res)
    const rethrowers = req.listeners('error').filter((listener) => !before.has(listener))
    if (rethrowers.length === 0) {
      // The patched surface is gone: say so loudly rather than guess what dynalite does now.
      console.error('dynalite-server.js: dynalite no longer adds a request error listener; ' +
        'recheck architect/dynalite#183 and remove or update this workaround')
      process.exit(3)
    }
    for (const rethrow of rethrowers) {
      req.removeListener('error', rethrow)
      req.on('error', function (err) {
        if (requestAborted(err)) {
          console.error(`dynalite: a client went away mid-request (${err.code} ${err.message}); continuing`)
          return
        }
        rethrow.call(this, err)
      })
    }
  })
}

const USAGE = 'usage: dynalite-server.js [--port N] [--host H] [--path DIR] [--stream-records N]'

function parseArgs (args) {
  // The options localstack and docker-compose.yml pass: --port N, --host H, --path DIR (dynalite's own
  // names); and --stream-records N, the records kept per stream by devstack/dynalite-streams.js.
  const argv = {}
  for (let i = 0; i < args.length; i += 2) {
    if (!args[i].startsWith('--') || args[i + 1] === undefined) {
      console.error(`${USAGE}; got ${args[i]}`)
      process.exit(2)
    }
    argv[args[i].slice(2)] = args[i + 1]
  }
  return argv
}

// Not a dynalite option: taken out before dynalite sees the rest.
function streamRecords (argv) {
  const text = argv['stream-records']
  delete argv['stream-records']
  if (text === undefined) return 100000
  if (!/^[1-9][0-9]*$/.test(text)) {
    console.error(`${USAGE}; --stream-records must be a positive integer, got ${text}`)
    process.exit(2)
  }
  return Number(text)
}

function main () {
  const argv = parseArgs(process.argv.slice(2))
  const maxRecords = streamRecords(argv)
  // As dynalite's cli.js: as PID 1 (in a container) SIGINT would not end the process.
  if (process.pid === 1) process.on('SIGINT', process.exit)
  const server = require('dynalite')(argv)
  surviveAbortedRequests(server)
  // The DynamoDB Streams API on the same port, in front of the wrapped dynalite (required here, after
  // the version check, because it relies on how dynalite 4.0.0 answers).
  require('./dynalite-streams').attachStreams(server, { requestAborted, maxRecords, path: argv.path })
  server.listen(argv.port || 4567, argv.host || undefined, () => {
    const address = server.address()
    console.log('Dynalite listening at: http://%s:%s', argv.host || 'localhost', address.port)
  })
}

if (require.main === module) main()
else module.exports = { requestAborted, surviveAbortedRequests } // for tests/integration/test_localstack.py
