"""confluent-kafka (librdkafka) helper for the kill -9 test of `keel serve`.

produce BOOTSTRAP TOPIC: creates TOPIC (3 partitions) and produces keys k0, k1, ... with
acks=all for ever, printing "ack KEY PARTITION OFFSET" for every acknowledged record (flushed
at once, so the test sees an ack as soon as the client did).

dump BOOTSTRAP TOPIC: prints "KEY PARTITION OFFSET" for every stored record of TOPIC.
"""
import sys

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]

if mode == "produce":
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        future.result(timeout=10)
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 1,
        "message.timeout.ms": 60000,
    })

    def delivered(error, message):
        if error is None:
            print(f"ack {message.key().decode()} {message.partition()} {message.offset()}", flush=True)

    i = 0
    while True:
        producer.produce(topic, key=f"k{i}", value=f"v{i}" * 10, on_delivery=delivered)
        producer.poll(0)
        i += 1
        if i % 50 == 0:
            producer.poll(0.005)
else:
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "unused-assign-only",
        "enable.auto.commit": False,
    })
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high == 0:
            continue
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        while True:
            message = consumer.poll(10)
            assert message is not None, f"timed out in partition {partition}"
            assert message.error() is None, message.error()
            print(f"{message.key().decode()} {message.partition()} {message.offset()}")
            if message.offset() + 1 >= high:
                break
    consumer.close()
