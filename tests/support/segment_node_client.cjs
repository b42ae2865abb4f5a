// Sends every call type through Segment's Node library (@segment/analytics-node, pinned in
// tests/package.json) to a tracking API, and prints what it sent as one JSON line:
// {"sent": [{"type", "messageId", "userId", "anonymousId"}], "errors": ["..."]}.
// Usage: node segment_node_client.cjs <host> <write key> <gzip: 0|1> <run name>
// With gzip 1 the library's own extension point (a custom `httpClient`, its documented option)
// compresses each request body and says so in Content-Encoding; the library has no gzip switch.
'use strict'
const zlib = require('node:zlib')
const { Analytics, FetchHTTPClient } = require('@segment/analytics-node')

class GzipHTTPClient extends FetchHTTPClient {
  makeRequest(options) {
    return super.makeRequest({
      ...options,
      headers: { ...options.headers, 'Content-Encoding': 'gzip' },
      body: zlib.gzipSync(options.body),
    })
  }
}

async function main() {
  const [host, writeKey, gzip, run] = process.argv.slice(2)
  const analytics = new Analytics({
    writeKey, host, flushAt: 4, flushInterval: 200, maxRetries: 3,
    ...(gzip === '1' ? { httpClient: new GzipHTTPClient() } : {}),
  })
  const sent = []
  const errors = []
  analytics.on('error', (error) => errors.push(String(error.reason || error.code || error)))
  const done = (resolve) => (error, ctx) => {
    if (error) errors.push(String(error))
    else sent.push({ type: ctx.event.type, messageId: ctx.event.messageId,
                     userId: ctx.event.userId, anonymousId: ctx.event.anonymousId })
    resolve()
  }
  const calls = []
  const call = (method, params) =>
    calls.push(new Promise((resolve) => analytics[method](params, done(resolve))))
  for (let n = 0; n < 3; n++) {
    const userId = `${run}-user-${n}`
    call('identify', { userId, traits: { plan: 'pro', n, big: 12345678901234 } })
    call('track', { userId, event: 'Order Completed', properties: { revenue: 9.5 + n } })
    call('page', { anonymousId: `${run}-anon-${n}`, name: 'Pricing', properties: { n } })
    call('screen', { userId, name: 'Home' })
    call('group', { userId, groupId: `${run}-org`, traits: { employees: 12 } })
    call('alias', { userId, previousId: `${run}-anon-${n}` })
  }
  await Promise.all(calls)
  await analytics.closeAndFlush({ timeout: 20000 })
  process.stdout.write(JSON.stringify({ sent, errors }) + '\n')
}

main().catch((error) => { console.error(error); process.exit(1) })
