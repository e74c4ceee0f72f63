"""kafka-python against keel-kafka: produce with keys and headers (plain and idempotent),
then consume one partition from the beginning. Prints one JSON line per consumed record.

Usage: kafka_python_client.py BOOTSTRAP TOPIC COUNT IDEMPOTENT(0|1)
"""
import json
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

bootstrap, topic, count, idempotent = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"

admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
admin.close()

producer = KafkaProducer(
    bootstrap_servers=bootstrap,
    acks="all",
    enable_idempotence=idempotent,
    linger_ms=5,
)
futures = [
    producer.send(
        topic,
        key=f"key-{i}".encode(),
        value=f"value-{i}".encode(),
        headers=[("seq", str(i).encode()), ("client", b"kafka-python")],
        partition=i % 3,
    )
    for i in range(count)
]
producer.flush()
for future in futures:
    future.get(timeout=10)
producer.close()

consumer = KafkaConsumer(
    bootstrap_servers=bootstrap,
    group_id=None,
    enable_auto_commit=False,
    consumer_timeout_ms=5000,
)
partition = TopicPartition(topic, 1)
consumer.assign([partition])
consumer.seek_to_beginning(partition)
expected = len(range(1, count, 3))
seen = 0
for message in consumer:
    print(json.dumps({
        "partition": message.partition,
        "offset": message.offset,
        "key": message.key.decode(),
        "value": message.value.decode(),
        "headers": [[k, v.decode()] for k, v in message.headers],
    }))
    seen += 1
    if seen == expected:
        break
consumer.close()
