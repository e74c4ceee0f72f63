// The console of a Kafka cluster (`keel console --brokers`) in Debian's Chromium, against the
// Apache Kafka broker of KEEL_TEST_KAFKA_BROKERS: a uniquely named topic, a group behind in
// it and a dead letter, seeded through Kafka by confluent-kafka; every page that works on a
// cluster (overview, topics, a topic's settings, the event browser, a group with its reset
// preview, dead letters) checked against the JSON API, and one state-changing action per
// page done with the page's own form, its effect checked through Kafka or `keel … --brokers`.
// The broker is shared with thousands of other tests' topics and groups: this test finds its
// own by name and deletes everything it creates. Without KEEL_TEST_KAFKA_BROKERS it says it
// did not run (scripts/test lists it); with it, an unreachable broker fails it. Needs a keel
// built with the `kafka` feature (scripts/test's feature build).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { api, confluentKafka, figure, keel, launchBrowser, startConsole } from "./harness.mjs";

const BROKERS = process.env.KEEL_TEST_KAFKA_BROKERS;
const skip = BROKERS ? false : "KEEL_TEST_KAFKA_BROKERS is unset (scripts/services start kafka)";
/** How long a condition may take to become true on a page, or the console's sampler to see the seed. */
const WAIT_MS = 60_000;
/** A sample every 2 s of at most 20 groups: the shared broker has thousands, and a new one is measured first. */
const SAMPLING = ["--console-sample-ms", "2000", "--console-sample-groups-max", "20"];

const run = `keel-browser-${process.pid}-${Date.now()}`;
const TOPIC = run;
const DLQ = `${run}.dlq`;
const GROUP = `${run}-billing`;
/** Made and deleted through the console's forms. */
const MADE = `${run}-made`;
/** The partitions of TOPIC, partition p holding p + 1 events. */
const PARTITIONS = 3;
/** GROUP's committed offsets: everything in partition 0, nothing in 1, one of 2's three — 4 events behind. */
const COMMITTED = [1, 0, 1];

// Creates TOPIC and DLQ, stores the events and a dead letter of GROUP's (as Keel's router
// writes one: the event's CloudEvent headers and the keel_dlq_* headers), and commits
// GROUP's offsets; every step waits for the broker's answer.
const SEED = `
import json, sys, time
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
brokers, spec = sys.argv[1], json.loads(sys.argv[2])
admin = AdminClient({"bootstrap.servers": brokers})
created = admin.create_topics([NewTopic(spec["topic"], spec["partitions"]), NewTopic(spec["dlq"], 1)],
    operation_timeout=30, request_timeout=30)
for future in created.values():
    future.result(timeout=60)
def event(id, key):
    return [("ce_specversion", b"1.0"), ("ce_id", id.encode()), ("ce_source", b"/browser-test"),
        ("ce_type", b"order.placed"), ("ce_partitionkey", key.encode()), ("content-type", b"application/json")]
producer = Producer({"bootstrap.servers": brokers, "message.timeout.ms": 60000})
for partition in range(spec["partitions"]):
    for n in range(partition + 1):
        key = "k%d" % n
        producer.produce(spec["topic"], b'{"n": %d}' % n, key=key, partition=partition,
            headers=event("%s-%d-%d" % (spec["topic"], partition, n), key))
now = int(time.time() * 1000)
dead = {"topic": spec["topic"], "partition": "2", "offset": "0", "group": spec["group"], "handler": "bill",
    "attempts": "3", "first_failure_ms": str(now - 2000), "last_failure_ms": str(now - 1000),
    "error": "card declined", "error_kind": "permanent"}
producer.produce(spec["dlq"], b'{"n": 0}', key="k0", partition=0,
    headers=event(spec["dead_id"], "k0") + [("keel_dlq_" + k, v.encode()) for k, v in dead.items()])
assert producer.flush(60) == 0, "not every record was acknowledged"
consumer = Consumer({"bootstrap.servers": brokers, "group.id": spec["group"], "enable.auto.commit": False})
offsets = [TopicPartition(spec["topic"], p, o) for p, o in enumerate(spec["committed"])]
# A new group's coordinator may not be known yet (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS).
for attempt in range(60):
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
        break
    except KafkaException as error:
        if attempt == 59 or not error.args[0].retriable():
            raise
        time.sleep(0.5)
consumer.close()
`;

// Deletes the topics and groups of argv[2] that exist (a failed run may not have made them all).
const CLEANUP = `
import json, sys
from confluent_kafka.admin import AdminClient
brokers, names = sys.argv[1], json.loads(sys.argv[2])
admin = AdminClient({"bootstrap.servers": brokers})
existing = admin.list_topics(timeout=30).topics
doomed = [t for t in names["topics"] if t in existing]
if doomed:
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        future.result(timeout=60)
listed = {g.group_id for g in admin.list_consumer_groups(request_timeout=30).result().valid}
groups = [g for g in names["groups"] if g in listed]
if groups:
    for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
        future.result(timeout=60)
`;

// The settings set on the topic argv[2] itself (not the brokers' or Kafka's defaults), as JSON.
const TOPIC_SETTINGS = `
import json, sys
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType
brokers, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": brokers})
resource = ConfigResource(ResourceType.TOPIC, topic)
configs = admin.describe_configs([resource], request_timeout=30)[resource].result(timeout=60)
print(json.dumps({name: entry.value for name, entry in configs.items()
    if ConfigSource(entry.source) == ConfigSource.DYNAMIC_TOPIC_CONFIG}))
`;

let console_;
let browser;
let page;

before(async () => {
  if (skip) return;
  confluentKafka(SEED, [BROKERS, JSON.stringify({
    topic: TOPIC, dlq: DLQ, group: GROUP, partitions: PARTITIONS, committed: COMMITTED, dead_id: `${run}-dead`,
  })]);
  console_ = await startConsole(BROKERS, SAMPLING);
  browser = await launchBrowser();
  page = await browser.context.newPage();
  page.setDefaultTimeout(WAIT_MS);
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await console_?.stop();
  // The canary's replay and the reset leave nothing else: the audit log is Keel's own topic.
  confluentKafka(CLEANUP, [BROKERS, JSON.stringify({ topics: [TOPIC, DLQ, MADE], groups: [GROUP] })]);
});

/** Waits until `check` answers true, asking again every 500 ms for at most WAIT_MS. */
async function until(what, check) {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} within ${WAIT_MS} ms`);
    await new Promise(resolve => setTimeout(resolve, 500));
  }
}

test("the overview shows the seeded group's lag and dead letter as the API's sample does", { skip }, async () => {
  // The sampler measures a group it has not seen before at its next sample.
  let overview;
  await until("a sample with the seeded group and dead letter", async () => {
    overview = (await api(console_, "/api/overview")).body;
    return overview.groups.groups.some(g => g.group === GROUP)
      && overview.dead_letters.some(d => d.dead_letter_topic === DLQ);
  });
  const group = overview.groups.groups.find(g => g.group === GROUP);
  assert.equal(group.lag_events, 4, JSON.stringify(group));
  const dead = overview.dead_letters.find(d => d.dead_letter_topic === DLQ);
  assert.equal(dead.pending, 1, JSON.stringify(dead));
  await page.goto(console_.url + "/");
  assert.equal(await figure(page, `#groups tr[data-group="${GROUP}"] [data-figure="lag-events"]`), group.lag_events);
  assert.equal(await figure(page, `#dead-letters tr[data-dlq="${DLQ}"] [data-figure="pending"]`), dead.pending);
  assert.match(await page.locator("ul.alerts").innerText(),
    new RegExp(`1 dead letter\\(s\\) in ${DLQ.replaceAll(".", "\\.")} from group '${GROUP}'`));
  assert.match(await page.locator('[data-figure="source"]').innerText(), new RegExp(BROKERS));
});

test("the topic list matches the API, and a topic is created from it and deleted behind a typed confirmation", { skip }, async () => {
  await page.goto(console_.url + `/topics?q=${run}`);
  const topics = (await api(console_, `/api/topics?q=${run}`)).body;
  assert.deepEqual(topics.map(t => t.name).sort(), [TOPIC, DLQ].sort(), "only this run's topics match its name");
  const row = page.locator(`tr[data-topic="${TOPIC}"]`);
  const listed = topics.find(t => t.name === TOPIC);
  assert.equal(listed.events, 6);
  assert.equal(await figure(row, '[data-figure="events"]'), listed.events);
  assert.equal(await figure(row, '[data-figure="partitions"]'), PARTITIONS);

  const form = page.locator("#create-topic");
  await form.locator('input[name="name"]').fill(MADE);
  await form.locator('input[name="partitions"]').fill("2");
  // The page reloads once the form says it is done: wait for that before going on.
  const reloaded = page.waitForEvent("load");
  await form.locator('button[type="submit"]').click();
  await form.locator(".done").waitFor();
  await reloaded;
  assert.equal((await api(console_, `/api/topics/${MADE}`)).body.partitions.length, 2);

  await page.goto(console_.url + `/topics/${MADE}`);
  const remove = page.locator("#delete-topic");
  await remove.locator('input[name="confirm_name"]').fill(MADE.slice(0, -1));
  await remove.locator('button[type="submit"]').click();
  assert.match(await remove.locator(".error").innerText(), new RegExp(`type ${MADE} to confirm`));
  assert.equal((await api(console_, `/api/topics/${MADE}`)).status, 200, "a wrong confirmation deletes nothing");
  await remove.locator('input[name="confirm_name"]').fill(MADE);
  await remove.locator('button[type="submit"]').click();
  await page.waitForURL(console_.url + "/topics");
  assert.equal((await api(console_, `/api/topics/${MADE}`)).status, 404);
  const left = (await api(console_, `/api/topics?q=${MADE}`)).body;
  assert.deepEqual(left, [], "the list forgets it before the next sample");
});

test("a topic's page shows its partitions, and its settings change after a preview, as Kafka then holds them", { skip }, async () => {
  await page.goto(console_.url + `/topics/${TOPIC}`);
  const described = (await api(console_, `/api/topics/${TOPIC}`)).body;
  assert.equal(await figure(page, '#topic-figures [data-figure="partitions"]'), described.partitions.length);
  assert.equal(await figure(page, '#topic-figures [data-figure="events"]'), described.events);
  const watermarks = await page.locator('[data-figure="high-watermark"]').allInnerTexts();
  assert.deepEqual(watermarks.map(Number), described.partitions.map(p => p.high_watermark));

  const form = page.locator("#topic-settings");
  const retention = form.locator('input[name="config[retention.ms]"]');
  const before = await retention.inputValue();
  await retention.fill("3600000");
  await form.locator("button[data-preview]").click();
  await form.locator(".done").waitFor();
  const rows = await form.locator("[data-result] tbody tr").allInnerTexts();
  assert.deepEqual(rows.map(row => row.split("\t")), [["retention.ms", before, "3600000"]]);
  assert.deepEqual(JSON.parse(confluentKafka(TOPIC_SETTINGS, [BROKERS, TOPIC])), {}, "a preview changes nothing");
  const reloaded = page.waitForEvent("load");
  await form.locator("button[data-needs-preview]").click();
  await form.locator(".done", { hasText: "changed 1 setting(s)" }).waitFor();
  assert.deepEqual(JSON.parse(confluentKafka(TOPIC_SETTINGS, [BROKERS, TOPIC])), { "retention.ms": "3600000" });
  await reloaded;
  assert.equal(await page.locator('[data-setting="retention.ms"]').innerText(), "3600000", "the page shows the cluster's new value");
});

test("the event browser shows the cluster's events, one as its CloudEvent, and produces a test event", { skip }, async () => {
  await page.goto(console_.url + `/topics/${TOPIC}/events?key=k0`);
  const found = (await api(console_, `/api/topics/${TOPIC}/events?key=k0`)).body.events;
  assert.equal(found.length, PARTITIONS, "one k0 event per partition");
  const rows = page.locator('[data-figure="event-table"] tbody tr');
  assert.equal(await rows.count(), found.length);
  assert.deepEqual(await page.locator('[data-figure="event-table"] tbody tr td:nth-child(5)').allInnerTexts(),
    found.map(e => e.event.id));

  await rows.first().locator("a").click();
  await page.waitForURL(new RegExp(`/topics/${TOPIC}/events/\\d+/\\d+$`));
  assert.equal(await page.locator('[data-attribute="id"]').innerText(), found[0].event.id);
  assert.equal(await page.locator('[data-attribute="type"]').innerText(), "order.placed");

  await page.goto(console_.url + `/topics/${TOPIC}/events`);
  const form = page.locator("#produce");
  await form.locator('input[name="type"]').fill("console.cluster-test");
  await form.locator('input[name="key"]').fill("k9");
  await form.locator("textarea").fill('{"n": 9}');
  await form.locator('button[type="submit"]').click();
  await form.locator(".done").waitFor();
  const produced = (await api(console_, `/api/topics/${TOPIC}/events?type=console.cluster-test`)).body.events;
  assert.equal(produced.length, 1);
  assert.deepEqual(produced[0].event.data, { n: 9 });
  assert.equal(produced[0].key, "k9");
});

test("a group's lag is shown as the API and `keel groups lag --brokers` measure it, and reset after a preview", { skip }, async () => {
  const lagOf = async () => JSON.parse(keel(["groups", "lag", GROUP, "--brokers", BROKERS, "--json"]));
  await page.goto(console_.url + `/groups/${GROUP}`);
  const lags = (await api(console_, `/api/groups/${GROUP}`)).body;
  const cli = await lagOf();
  assert.deepEqual(lags.map(l => l.committed_offset), COMMITTED);
  assert.deepEqual(cli.map(l => l.lag_events), lags.map(l => l.lag_events));
  const behind = lags.reduce((n, l) => n + l.lag_events, 0);
  assert.equal(await figure(page, '#group-figures [data-figure="lag-events"]'), behind);
  assert.equal(await figure(page, '#group-figures [data-figure="partitions"]'), PARTITIONS);

  const form = page.locator("#reset");
  await form.locator('select[name="topic"]').selectOption(TOPIC);
  await form.locator('select[name="to"]').selectOption("earliest");
  const apply = form.locator("button[data-needs-preview]");
  assert.ok(await apply.isDisabled(), "apply waits for a preview");
  await form.locator("button[data-preview]").click();
  await form.locator("table").waitFor();
  assert.equal(await form.locator("table tbody tr").count(), PARTITIONS);
  assert.deepEqual((await lagOf()).map(l => l.committed_offset), COMMITTED, "a preview commits nothing");
  await Promise.all([page.waitForEvent("load"), apply.click()]);
  const reset = await lagOf();
  assert.deepEqual(reset.map(l => l.committed_offset), reset.map(l => l.log_start_offset), JSON.stringify(reset));
  assert.equal(await figure(page, '#group-figures [data-figure="lag-events"]'),
    reset.reduce((n, l) => n + l.lag_events, 0));
});

test("the dead letters match the API, and one is replayed with a canary as `keel dlq --brokers` then records", { skip }, async () => {
  const summary = (await api(console_, "/api/dead-letters")).body.find(d => d.dead_letter_topic === DLQ);
  assert.equal(summary.pending, 1, JSON.stringify(summary));
  await page.goto(console_.url + "/dead-letters");
  assert.equal(await figure(page, `tr[data-dlq="${DLQ}"] [data-figure="pending"]`), summary.pending);

  await page.goto(console_.url + `/dead-letters/${DLQ}`);
  assert.equal(await figure(page, '#letters [data-figure="pending"]'), summary.pending);
  assert.match(await page.locator('[data-figure="letters"] tbody').innerText(), /card declined/);
  const replay = page.locator("#replay");
  assert.ok(await replay.locator('input[name="canary"]').isChecked(), "canary is the default");
  await replay.locator('button[type="submit"]').click();
  await replay.locator("[data-canary]").waitFor();
  assert.match(await replay.locator(".done").innerText(), /: 1 replayed/);
  const history = keel(["dlq", "history", TOPIC, "--brokers", BROKERS, "--json"]);
  const entry = JSON.parse(history.trim().split("\n")[0]);
  assert.equal(entry.action, "canary", history);
  const replayed = (await api(console_, `/api/topics/${TOPIC}/events?id=${run}-dead`)).body.events;
  assert.deepEqual(replayed.map(e => e.partition), [2], "back in the partition it failed in");
});
