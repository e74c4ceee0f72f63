"""Joins a consumer group through `keel serve` with kafka-python and a 10 s session timeout.

Usage: kafka_group_join.py BOOTSTRAP TOPIC

Prints `joined` once the member holds an assignment, or `refused <error>` when the
coordinator refuses the join (kafka-python raises a join error that is not retriable), and
exits non-zero when neither happens within 30 s.
"""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

bootstrap, topic = sys.argv[1], sys.argv[2]
# One record makes the broker auto-create the topic, so the member has partitions to own.
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
producer.send(topic, b"x").get(timeout=30)
producer.close()

consumer = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    group_id="session-bounds",
    session_timeout_ms=10000,
    heartbeat_interval_ms=3000,
)
deadline = time.monotonic() + 30
try:
    while time.monotonic() < deadline:
        consumer.poll(timeout_ms=200)
        if consumer.assignment():
            print("joined")
            break
    else:
        sys.exit("no assignment and no refusal within 30 s")
except KafkaError as error:
    print("refused", type(error).__name__)
finally:
    consumer.close()
