// The DynamoDB Streams API for the dynalite launcher (devstack/dynalite-server.js).
//
// dynalite 4.0.0 has no Streams API, yet the change feed (cachewarm.change_capture) reads one. This layer
// sits in front of dynalite on the same port: `DynamoDBStreams_20120810.*` requests are answered here and
// never reach dynalite; the other requests go to dynalite, and its HTTP 200 answers to writes become stream
// records (keys only). dynalite 4.0.0 drops CreateTable's StreamSpecification silently (checkTypes deletes
// unknown members) and rejects an UpdateTable with only a StreamSpecification ("At least one of ..."): so
// CreateTable and UpdateTable are read here first, the StreamSpecification is taken out, and an UpdateTable
// that only changes the stream is sent to dynalite as a DescribeTable.
//
// Streams live in this process's memory only: one shard each, at most maxRecords records (a ring: the trim
// horizon moves), no 24-hour retention, no shard splits. With --path, <path>/streams.json names the tables
// with a stream, and after a restart each gets a new, empty stream at once. See docs/local-streams.md.
'use strict'

const crypto = require('crypto')
const fs = require('fs')
const nodePath = require('path')
const { PassThrough } = require('stream')
// What dynalite signs its bodies with (botocore checks x-amz-crc32): dynalite's dependency, found from it.
const crc32 = require(require.resolve('buffer-crc32', { paths: [ nodePath.dirname(require.resolve('dynalite')) ] }))

const STREAMS_API = 'DynamoDBStreams_20120810.'
const DYNAMODB_API = 'DynamoDB_20120810.'
const STREAMS_OPERATIONS = [ 'ListStreams', 'DescribeStream', 'GetShardIterator', 'GetRecords' ]
const VIEW_TYPES = [ 'KEYS_ONLY', 'NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES' ]
// TransactWriteItems is not here: dynalite 4.0.0 answers it UnknownOperationException, so nothing is written.
const WRITES = new Set([ 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem' ])
const MAX_REQUEST_BYTES = 16 * 1024 * 1024 // dynalite's own limit (index.js)

// AWS's JSON error shape, with the service prefix AWS (and dynalite) use for each type.
const SERVICES = { ValidationException: 'amazon.coral.validate', SerializationException: 'amazon.coral.service',
  UnknownOperationException: 'amazon.coral.service' }
class StreamsError extends Error {
  constructor (type, message) { super(message); this.type = type }
  get body () {
    const service = SERVICES[this.type] || 'amazonaws.dynamodb.v20120810'
    return { __type: `com.${service}#${this.type}`, message: this.message }
  }
}

const invalid = (message) => new StreamsError('ValidationException', message)
const trimmed = (ring) => new StreamsError('TrimmedDataAccessException',
  `The requested records are beyond the trim horizon: only the last ${ring.capacity} are kept (--stream-records)`)
const pad = (n) => String(n).padStart(21, '0')
const parse = (buffer) => { try { return JSON.parse(buffer.toString()) } catch { return null } }

// One stream's records, numbered from 0; slot i % capacity holds record i while it is retained.
class Ring {
  constructor (capacity) { this.capacity = capacity; this.slots = []; this.total = 0; this.trimmedUpTo = 0 }
  get oldest () { return Math.max(0, this.total - this.capacity) }
  at (i) { return this.slots[i % this.capacity] }
  push (entry) {
    const slot = this.total++ % this.capacity
    if (this.slots[slot]) this.trimmedUpTo = this.slots[slot].seq // the record it overwrites
    this.slots[slot] = entry
  }

  search (seq) { // the first retained index whose sequence number is >= seq (numbers only grow: bisect)
    let lo = this.oldest, hi = this.total
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (this.at(mid).seq < seq) lo = mid + 1; else hi = mid }
    return lo
  }
}

class Feed {
  constructor ({ maxRecords = 100000, path } = {}) {
    this.maxRecords = maxRecords
    this.tables = new Map() // table name -> its stream; a table has at most one, so memory stays bounded
    this.lastSequence = 0 // one counter for every stream: a sequence number is unique in this process
    this.labelClock = 0
    this.stateFile = path ? nodePath.join(path, 'streams.json') : null
    const saved = this.stateFile && fs.existsSync(this.stateFile) ? parse(fs.readFileSync(this.stateFile)) : null
    for (const [ name, t ] of Object.entries(saved || {})) this.enable(name, t.tableArn, t.keySchema, t.viewType)
  }

  saveState () {
    if (!this.stateFile) return
    const state = {}
    for (const { tableName, tableArn, keySchema, viewType } of this.tables.values()) {
      state[tableName] = { tableArn, keySchema, viewType }
    }
    try {
      fs.mkdirSync(nodePath.dirname(this.stateFile), { recursive: true })
      fs.writeFileSync(this.stateFile + '.tmp', JSON.stringify(state, null, 1))
      fs.renameSync(this.stateFile + '.tmp', this.stateFile) // a crash mid-write leaves the old file whole
    }
    catch (err) { console.error(`dynalite-streams: could not save ${this.stateFile}: ${err.message}`) }
  }

  enable (tableName, tableArn, keySchema, viewType) {
    this.tables.delete(tableName)
    // Labels are ISO times, as AWS's are; two streams of one table never share one.
    const ms = this.labelClock = Math.max(Date.now(), this.labelClock + 1)
    const label = new Date(ms).toISOString().replace('Z', '')
    this.tables.set(tableName, {
      arn: `${tableArn}/stream/${label}`, label, tableName, tableArn, keySchema, viewType,
      region: tableArn.split(':')[3], created: ms / 1000, startSeq: this.lastSequence + 1,
      shardId: `shardId-${String(ms).padStart(20, '0')}-${crypto.randomBytes(4).toString('hex')}`,
      ring: new Ring(this.maxRecords),
    })
    this.saveState()
  }

  // Deleting a table, or disabling its stream, drops the stream at once (AWS keeps it readable 24 hours).
  drop (tableName) {
    if (this.tables.delete(tableName)) this.saveState()
  }

  // Adds the stream members to a DescribeTable Table or a TableDescription; false if it has no stream.
  decorate (table) {
    const stream = table && this.tables.get(table.TableName)
    if (!stream) return false
    Object.assign(table, { StreamSpecification: { StreamEnabled: true, StreamViewType: stream.viewType },
      LatestStreamArn: stream.arn, LatestStreamLabel: stream.label })
    return true
  }

  // Keys only, whatever the view type: images are not recorded (docs/local-streams.md).
  record (tableName, item, eventName) {
    const stream = this.tables.get(tableName)
    if (!stream || !item) return
    const keys = {}
    let size = 0
    for (const { AttributeName: name } of stream.keySchema) {
      if (!item[name]) return
      keys[name] = item[name]
      size += Buffer.byteLength(name) + attributeSize(item[name])
    }
    const seq = ++this.lastSequence
    stream.ring.push({ seq, record: {
      eventID: crypto.randomBytes(16).toString('hex'), eventName, eventVersion: '1.1', eventSource: 'aws:dynamodb',
      awsRegion: stream.region,
      dynamodb: { ApproximateCreationDateTime: Date.now() / 1000, Keys: keys, SequenceNumber: pad(seq),
        SizeBytes: size, StreamViewType: stream.viewType },
    } })
  }

  // The records of a successful write. INSERT or MODIFY is the truth only when the client asked for
  // ReturnValues ALL_OLD (the old item shows whether there was one); otherwise PutItem is INSERT and
  // UpdateItem MODIFY, because dynalite's answer does not say whether the item existed.
  recordWrite (op, request, response) {
    const existed = request.ReturnValues === 'ALL_OLD' ? Boolean(response.Attributes) : null
    if (op === 'PutItem') this.record(request.TableName, request.Item, existed ? 'MODIFY' : 'INSERT')
    else if (op === 'UpdateItem') this.record(request.TableName, request.Key, existed === false ? 'INSERT' : 'MODIFY')
    else if (op === 'DeleteItem' && existed !== false) this.record(request.TableName, request.Key, 'REMOVE')
    else if (op === 'BatchWriteItem') {
      for (const [ table, writes ] of Object.entries(request.RequestItems || {})) {
        const stream = this.tables.get(table)
        if (!stream) continue
        const unprocessed = new Set(((response.UnprocessedItems || {})[table] || []).map((w) => writeKey(stream, w)))
        for (const w of writes) {
          if (unprocessed.has(writeKey(stream, w))) continue
          if (w.PutRequest) this.record(table, w.PutRequest.Item, 'INSERT')
          else if (w.DeleteRequest) this.record(table, w.DeleteRequest.Key, 'REMOVE')
        }
      }
    }
  }

  // --- the Streams API --------------------------------------------------------------------------

  stream (arn, shardId) {
    const stream = [ ...this.tables.values() ].find((s) => s.arn === arn)
    if (stream && (shardId === undefined || shardId === stream.shardId)) return stream
    throw new StreamsError('ResourceNotFoundException', `Requested resource not found: ${stream
      ? `Shard: ${shardId} in ` : ''}Stream: ${arn} not found`)
  }

  ListStreams (data) {
    const limit = integer(data.Limit, 100, 1, 100, 'limit')
    let streams = [ ...this.tables.values() ].filter((s) => data.TableName == null || s.tableName === data.TableName)
    if (data.ExclusiveStartStreamArn != null) {
      streams = streams.slice(streams.findIndex((s) => s.arn === data.ExclusiveStartStreamArn) + 1)
    }
    const page = streams.slice(0, limit)
    const result = { Streams: page.map((s) => ({ StreamArn: s.arn, TableName: s.tableName, StreamLabel: s.label })) }
    if (streams.length > limit) result.LastEvaluatedStreamArn = page[page.length - 1].arn
    return result
  }

  DescribeStream (data) {
    integer(data.Limit, 100, 1, 100, 'limit')
    const s = this.stream(data.StreamArn)
    // The one shard never closes, so it has no EndingSequenceNumber.
    const shard = { ShardId: s.shardId, SequenceNumberRange: { StartingSequenceNumber: pad(s.startSeq) } }
    return { StreamDescription: {
      StreamArn: s.arn, StreamLabel: s.label, StreamStatus: 'ENABLED', StreamViewType: s.viewType,
      CreationRequestDateTime: s.created, TableName: s.tableName, KeySchema: s.keySchema,
      Shards: data.ExclusiveStartShardId === s.shardId ? [] : [ shard ],
    } }
  }

  GetShardIterator (data) {
    const stream = this.stream(data.StreamArn, String(data.ShardId))
    const { ring } = stream, type = data.ShardIteratorType
    if (type === 'TRIM_HORIZON') return iterator(stream, ring.oldest)
    if (type === 'LATEST') return iterator(stream, ring.total)
    if (!/^(AT|AFTER)_SEQUENCE_NUMBER$/.test(type)) throw invalid(`Invalid ShardIteratorType: ${type}`)
    const text = data.SequenceNumber, seq = Number(text), after = type === 'AFTER_SEQUENCE_NUMBER'
    if (!/^\d{1,40}$/.test(text) || seq > this.lastSequence || seq < stream.startSeq) {
      throw invalid(`Invalid SequenceNumber ${text} for ${type} in shard ${stream.shardId}`)
    }
    if (seq < ring.trimmedUpTo || (!after && seq === ring.trimmedUpTo)) throw trimmed(ring)
    return iterator(stream, ring.search(after ? seq + 1 : seq))
  }

  GetRecords (data) {
    const limit = integer(data.Limit, 1000, 1, 1000, 'limit')
    const decoded = parse(Buffer.from(String(data.ShardIterator), 'base64url'))
    const [ arn, shardId, position ] = Array.isArray(decoded) ? decoded : []
    if (typeof shardId !== 'string' || !Number.isInteger(position)) throw invalid('Invalid ShardIterator')
    const { ring } = this.stream(arn, shardId)
    if (position < 0 || position > ring.total) throw invalid('Invalid ShardIterator')
    if (position < ring.oldest) throw trimmed(ring)
    const end = Math.min(ring.total, position + limit)
    const records = []
    for (let i = position; i < end; i++) records.push(ring.at(i).record)
    return { Records: records, NextShardIterator: iterator({ arn, shardId }, end).ShardIterator }
  }
}

// Opaque to clients: the stream's ARN, the shard and the index of the next record.
function iterator ({ arn, shardId }, position) {
  return { ShardIterator: Buffer.from(JSON.stringify([ arn, shardId, position ])).toString('base64url') }
}

function integer (value, fallback, min, max, name) {
  if (value == null) return fallback
  if (Number.isInteger(value) && value >= min && value <= max) return value
  throw invalid(`Value '${value}' at '${name}' failed to satisfy constraint: Member must be between ${min} and ${max}`)
}

// Roughly DynamoDB's item-size rule, for key attributes (strings, numbers, binaries).
function attributeSize (value) {
  if (value.S != null) return Buffer.byteLength(value.S)
  if (value.N != null) return Math.ceil(String(value.N).replace(/^-|\.|^0+/g, '').length / 2) + 1
  if (value.B != null) return Buffer.from(value.B, 'base64').length
  return Buffer.byteLength(JSON.stringify(value))
}

function writeKey (stream, write) {
  const item = (write.PutRequest && write.PutRequest.Item) || (write.DeleteRequest && write.DeleteRequest.Key) || {}
  return JSON.stringify(stream.keySchema.map(({ AttributeName: name }) => item[name]))
}

// --- in front of dynalite ----------------------------------------------------------------------

// Puts the layer in front of the server's one request handler (the #183 wrapper around dynalite's).
function attachStreams (server, { requestAborted, maxRecords, path }) {
  const handlers = server.listeners('request')
  if (handlers.length !== 1) throw new Error(`dynalite-streams: expected 1 request handler, found ${handlers.length}`)
  const [ dynalite ] = handlers
  const feed = new Feed({ maxRecords, path })
  server.removeListener('request', dynalite)
  server.on('request', (req, res) => {
    const target = String(req.headers['x-amz-target'] || '')
    const op = target.startsWith(DYNAMODB_API) ? target.slice(DYNAMODB_API.length) : null
    if (target.startsWith(STREAMS_API) && req.method === 'POST') {
      readBody(req, res, requestAborted, (body) => answerStreams(feed, target.slice(STREAMS_API.length), body, res))
    }
    else if (op === 'CreateTable' || op === 'UpdateTable') {
      readBody(req, res, requestAborted, (body) => tableRequest(feed, dynalite, req, res, op, body))
    }
    else {
      if (WRITES.has(op) || op === 'DescribeTable' || op === 'DeleteTable') observe(feed, req, res, op)
      dynalite(req, res) // the request itself reaches dynalite untouched
    }
  })
  return feed
}

// Reads the whole body of a request that dynalite must not see as it arrives. A client that goes away
// mid-body is dropped, as the #183 workaround does for dynalite's requests; any other request error
// still ends the process, as it does in dynalite.
function readBody (req, res, requestAborted, done) {
  const chunks = []
  let size = 0
  req.on('error', (err) => {
    if (!requestAborted(err)) throw err
    console.error(`dynalite: a client went away mid-request (${err.code} ${err.message}); continuing`)
  })
  req.on('data', (chunk) => {
    if ((size += chunk.length) <= MAX_REQUEST_BYTES) return chunks.push(chunk)
    req.removeAllListeners('data').removeAllListeners('end')
    res.statusCode = 413 // as dynalite answers it
    res.end()
  })
  req.on('end', () => done(Buffer.concat(chunks)))
}

function answerStreams (feed, op, body, res) {
  try {
    if (!STREAMS_OPERATIONS.includes(op)) throw new StreamsError('UnknownOperationException', '')
    const data = parse(body)
    if (!data || typeof data !== 'object') throw new StreamsError('SerializationException', 'Not a JSON object')
    send(res, 200, feed[op](data))
  }
  catch (err) {
    if (err instanceof StreamsError) return send(res, 400, err.body)
    console.error(`dynalite-streams: ${op} failed: ${err.stack || err}`) // a bug here must not end the database
    send(res, 500, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(err.message) })
  }
}

function send (res, status, payload) {
  const body = JSON.stringify(payload)
  res.statusCode = status
  res.setHeader('x-amzn-RequestId', crypto.randomBytes(26).toString('hex').toUpperCase())
  res.setHeader('x-amz-crc32', crc32.unsigned(body))
  res.setHeader('Content-Type', 'application/x-amz-json-1.0')
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.end(body)
}

// dynalite reads a request only through its events, headers, method and url, so a stand-in can carry
// a rewritten body. The #183 wrapper still wraps the error listener dynalite adds to it.
function forward (dynalite, req, res, body, operation) {
  const headers = { ...req.headers, 'content-length': String(body.length) }
  if (operation) headers['x-amz-target'] = DYNAMODB_API + operation
  const standIn = Object.assign(new PassThrough(), { headers, method: req.method, url: req.url })
  dynalite(standIn, res)
  standIn.end(body)
}

// Follows dynalite's answer. dynalite 4.0.0 sends each one with a single res.end(body) (sendData), so
// res.write needs no wrapper. On HTTP 200 `then` gets the parsed body; an object it returns is sent
// instead, with its own length and CRC. A failure here is logged, and the original answer sent.
function onSuccess (res, then) {
  const end = res.end
  res.end = function (chunk, ...rest) {
    res.end = end
    const text = typeof chunk === 'string' || Buffer.isBuffer(chunk)
    if (res.statusCode !== 200 || res.headersSent || !text) return end.call(this, chunk, ...rest)
    try {
      const replacement = then(JSON.parse(String(chunk)))
      if (replacement) {
        chunk = JSON.stringify(replacement)
        res.setHeader('x-amz-crc32', crc32.unsigned(chunk))
        res.setHeader('Content-Length', Buffer.byteLength(chunk))
      }
    }
    catch (err) { console.error(`dynalite-streams: could not follow an answer: ${err.stack || err}`) }
    return end.call(this, chunk, ...rest)
  }
}

function observe (feed, req, res, op) {
  if (op === 'DescribeTable') return onSuccess(res, (out) => feed.decorate(out.Table) && out)
  if (op === 'DeleteTable') return onSuccess(res, (out) => { feed.drop(out.TableDescription.TableName) })
  const chunks = []
  req.on('data', (chunk) => chunks.push(chunk)) // added before dynalite's listener: both get every chunk
  onSuccess(res, (out) => {
    if (feed.tables.size) feed.recordWrite(op, JSON.parse(Buffer.concat(chunks).toString()), out)
  })
}

// CreateTable and UpdateTable: their StreamSpecification is handled here (see the top of this file).
function tableRequest (feed, dynalite, req, res, op, body) {
  const data = parse(body)
  if (!data || typeof data !== 'object' || data.StreamSpecification == null) {
    onSuccess(res, (out) => {
      if (op === 'UpdateTable') return feed.decorate(out.TableDescription) && out
      feed.drop(out.TableDescription.TableName) // a leftover of a stale streams.json
    })
    return forward(dynalite, req, res, body) // the very bytes the client sent
  }
  const spec = data.StreamSpecification
  delete data.StreamSpecification
  let change
  try { change = streamChange(feed, op, data.TableName, spec) }
  catch (err) { return send(res, 400, err.body) }
  // An UpdateTable that only changes the stream is not valid for dynalite: it becomes a DescribeTable.
  const onlyStream = op === 'UpdateTable' && Object.keys(data).every((key) => key === 'TableName')
  onSuccess(res, (out) => {
    const table = onlyStream ? out.Table : out.TableDescription
    if (change) feed.enable(table.TableName, table.TableArn, table.KeySchema, change)
    else feed.drop(table.TableName)
    feed.decorate(table)
    return onlyStream ? { TableDescription: table } : out
  })
  const forwarded = onlyStream ? { TableName: data.TableName } : data
  forward(dynalite, req, res, Buffer.from(JSON.stringify(forwarded)), onlyStream ? 'DescribeTable' : null)
}

// The view type of the stream to start, or null for no stream (none asked for, or one disabled).
function streamChange (feed, op, tableName, spec) {
  const enabled = spec.StreamEnabled, current = op === 'UpdateTable' && feed.tables.get(tableName)
  if (typeof enabled !== 'boolean') throw invalid('One or more parameter values were invalid: no StreamEnabled')
  if (enabled && !VIEW_TYPES.includes(spec.StreamViewType)) {
    throw invalid(`One or more parameter values were invalid: StreamViewType must be one of ${VIEW_TYPES.join(', ')}`)
  }
  if (enabled && current) throw invalid(`Table already has an enabled stream: ${current.arn}`)
  if (op === 'UpdateTable' && !enabled && !current) throw invalid(`Table ${tableName} has no enabled stream to disable`)
  return enabled ? spec.StreamViewType : null
}

module.exports = { Feed, attachStreams }
