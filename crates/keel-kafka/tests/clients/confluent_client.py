"""confluent-kafka (librdkafka) against keel-kafka: produce with keys and headers, with or
without enable.idempotence, then consume one partition from the beginning. Prints one JSON
line per consumed record.

Usage: confluent_client.py BOOTSTRAP TOPIC COUNT IDEMPOTENT(0|1)
"""
import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, count, idempotent = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"

admin = AdminClient({"bootstrap.servers": bootstrap})
for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
    future.result(timeout=10)

errors = []
producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": idempotent,
    "linger.ms": 5,
})

def delivered(error, message):
    if error is not None:
        errors.append(str(error))

for i in range(count):
    producer.produce(
        topic,
        key=f"key-{i}",
        value=f"value-{i}",
        headers=[("seq", str(i)), ("client", "confluent")],
        partition=i % 3,
        on_delivery=delivered,
    )
    producer.poll(0)
remaining = producer.flush(15)
assert remaining == 0 and not errors, (remaining, errors[:5])

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "unused-assign-only",
    "enable.auto.commit": False,
})
consumer.assign([TopicPartition(topic, 1, OFFSET_BEGINNING)])
expected = len(range(1, count, 3))
seen = 0
while seen < expected:
    message = consumer.poll(10)
    assert message is not None, f"timed out after {seen} of {expected} records"
    assert message.error() is None, message.error()
    print(json.dumps({
        "partition": message.partition(),
        "offset": message.offset(),
        "key": message.key().decode(),
        "value": message.value().decode(),
        "headers": [[k, v.decode()] for k, v in (message.headers() or [])],
    }))
    seen += 1
consumer.close()
