// KafkaJS's basic checks against one broker: records with keys and headers, a consumer group
// of three members, and a group's commits resumed by its next member. The same checks run in
// franz-go (compat/go) and against both keel serve and Apache Kafka
// (crates/keel-kafka/tests/go_and_js_clients.rs), so a difference between the brokers shows.
//
//     node checks.js <host:port> <prefix>
//
// Prints one JSON object: each check's failure (null when it passed) and, per API key KafkaJS
// implements, the version it would use on this broker (the highest both support, as KafkaJS's
// own `lookup` picks it), for docs/kafka-compatibility.md's matrix.
'use strict'

const { Kafka, logLevel, Partitioners } = require('kafkajs')
// KafkaJS's request definitions and API keys: not public API, but the version is locked
// (package-lock.json) and they are the only place that says which versions it implements.
const { requests } = require('kafkajs/src/protocol/requests')
const apiKeys = require('kafkajs/src/protocol/requests/apiKeys')

const [bootstrap = '127.0.0.1:9092', prefix = 'kafkajs'] = process.argv.slice(2)

// Bounds each check: a broker that stops answering fails the check instead of hanging.
const CHECK_TIMEOUT_MS = 90000

const kafka = new Kafka({
  clientId: 'keel-compat',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  logCreator: () => ({ log }) => console.error(`kafkajs: ${log.message} ${log.error ?? ''}`),
})

const producer = () => kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })

async function createTopic(suffix, numPartitions) {
  const topic = `${prefix}.${suffix}`
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true })
  } finally {
    await admin.disconnect()
  }
  return topic
}

// Resolves when `condition()` holds, polling; rejects with `describe()` at the deadline.
async function until(condition, describe, deadline) {
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(describe())
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

// 30 records with keys and two headers come back as sent, every key in one partition, in the
// order sent there.
async function produceWithHeaders(deadline) {
  const topic = await createTopic('headers', 3)
  const sender = producer()
  await sender.connect()
  const count = 30
  try {
    for (let i = 0; i < count; i++) {
      await sender.send({
        topic,
        acks: -1,
        messages: [{ key: `key-${i % 5}`, value: `value-${i}`, headers: { trace: `trace-${i}`, empty: '' } }],
      })
    }
  } finally {
    await sender.disconnect()
  }
  const consumer = kafka.consumer({ groupId: `${prefix}.headers-reader` })
  const partitionOf = {}
  const lastOf = {}
  const problems = []
  let seen = 0
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen++
        const i = Number(message.value.toString().slice('value-'.length))
        const key = message.key.toString()
        const trace = message.headers.trace?.toString()
        if (key !== `key-${i % 5}` || trace !== `trace-${i}`) {
          problems.push(`record ${i} came back with key ${key} and trace ${trace}`)
        }
        if (Object.keys(message.headers).length !== 2 || message.headers.empty?.length !== 0) {
          problems.push(`record ${i} came back with headers ${JSON.stringify(message.headers)}`)
        }
        if (key in partitionOf && partitionOf[key] !== partition) {
          problems.push(`key ${key} in partitions ${partitionOf[key]} and ${partition}`)
        }
        partitionOf[key] = partition
        if (key in lastOf && lastOf[key] > i) problems.push(`key ${key}: record ${i} after ${lastOf[key]}`)
        lastOf[key] = i
      },
    })
    await until(() => seen >= count || problems.length > 0, () => `consumed ${seen} of ${count}`, deadline)
  } finally {
    await consumer.disconnect()
  }
  if (problems.length > 0) throw new Error(problems[0])
}

// Three members of one group share six partitions (two each, once the group is stable), then
// 300 records are handled once each across them.
async function groupOfThree(deadline) {
  const topic = await createTopic('group', 6)
  const groupId = `${prefix}.group-of-three`
  const assigned = [0, 0, 0]
  const handled = {}
  const members = [0, 1, 2].map(() => kafka.consumer({ groupId }))
  try {
    for (const [m, member] of members.entries()) {
      member.on(member.events.GROUP_JOIN, event => {
        assigned[m] = (event.payload.memberAssignment[topic] ?? []).length
      })
      await member.connect()
      await member.subscribe({ topic, fromBeginning: true })
    }
    await Promise.all(
      members.map(member =>
        member.run({
          eachMessage: async ({ message }) => {
            const value = message.value.toString()
            handled[value] = (handled[value] ?? 0) + 1
          },
        }),
      ),
    )
    await until(
      () => assigned.every(count => count === 2),
      () => `partitions per member never became 2, 2, 2: ${assigned}`,
      deadline,
    )
    const sender = producer()
    await sender.connect()
    const count = 300
    try {
      const messages = Array.from({ length: count }, (_, i) => ({ key: `key-${i % 30}`, value: `value-${i}` }))
      await sender.send({ topic, acks: -1, messages })
    } finally {
      await sender.disconnect()
    }
    await until(
      () => Object.keys(handled).length === count,
      () => `handled ${Object.keys(handled).length} of ${count}`,
      deadline,
    )
  } finally {
    await Promise.all(members.map(member => member.disconnect()))
  }
  const twice = Object.entries(handled).find(([, times]) => times !== 1)
  if (twice) throw new Error(`${twice[0]} handled ${twice[1]} times by a stable group`)
}

// A member commits after the 10th of 20 records and leaves; the group's next member starts at
// the 11th.
async function commitsResumed(deadline) {
  const topic = await createTopic('commits', 1)
  const groupId = `${prefix}.commits`
  const count = 20
  const sender = producer()
  await sender.connect()
  try {
    for (let i = 0; i < count; i++) await sender.send({ topic, acks: -1, messages: [{ value: `${i}` }] })
  } finally {
    await sender.disconnect()
  }

  const first = kafka.consumer({ groupId })
  let committed = false
  await first.connect()
  try {
    await first.subscribe({ topic, fromBeginning: true })
    await first.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (message.offset === '9' && !committed) {
          await first.commitOffsets([{ topic, partition, offset: '10' }])
          committed = true
        }
      },
    })
    await until(() => committed, () => 'the first member never reached offset 9', deadline)
  } finally {
    await first.disconnect()
  }

  const admin = kafka.admin()
  await admin.connect()
  try {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
    const offset = offsets.partitions.find(p => p.partition === 0)?.offset
    if (offset !== '10') throw new Error(`committed offset ${offset}, not 10`)
  } finally {
    await admin.disconnect()
  }

  const next = kafka.consumer({ groupId })
  let want = 10
  let problem
  await next.connect()
  try {
    await next.subscribe({ topic, fromBeginning: true })
    await next.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        if (message.offset !== `${want}` || message.value.toString() !== `${want}`) {
          problem ??= `the next member read offset ${message.offset} (${message.value}), expected ${want}`
        }
        want++
      },
    })
    await until(() => want >= count || problem, () => `the next member read up to offset ${want}`, deadline)
  } finally {
    await next.disconnect()
  }
  if (problem) throw new Error(problem)
}

// For each API key the broker advertises and KafkaJS implements, keyed "Name(key)", the
// version KafkaJS's `lookup` would send ("-" when the broker's range does not reach it). The
// broker's ranges come from the ApiVersions answer a cluster connection keeps.
async function usableVersions() {
  const createCluster = Object.getOwnPropertySymbols(kafka).find(
    symbol => symbol.description === 'private:Kafka:createCluster',
  )
  const cluster = kafka[createCluster]({})
  await cluster.connect()
  const advertised = cluster.brokerPool.versions
  await cluster.disconnect()
  const usable = {}
  for (const [name, definition] of Object.entries(requests)) {
    const key = apiKeys[name]
    const range = advertised[key]
    if (definition.versions.length === 0 || !range) continue
    const version = Math.min(Math.max(...definition.versions.map(Number)), range.maxVersion)
    usable[`${name}(${key})`] = version >= range.minVersion ? `${version}` : '-'
  }
  return usable
}

async function main() {
  const tests = {}
  for (const [name, check] of Object.entries({
    ProduceWithHeaders: produceWithHeaders,
    GroupOfThree: groupOfThree,
    CommitsResumed: commitsResumed,
  })) {
    try {
      await check(Date.now() + CHECK_TIMEOUT_MS)
      tests[name] = null
    } catch (error) {
      tests[name] = String(error.message ?? error)
    }
  }
  const usable = await usableVersions()
  process.stdout.write(JSON.stringify({ tests, usable }) + '\n')
}

main().then(
  () => process.exit(0),
  error => {
    console.error(error)
    process.exit(1)
  },
)
