"""A confluent-kafka producer with acks=all that sends numbered records to partition 0 of a
topic until its standard input closes, riding out broker restarts (it reconnects and retries),
then prints one JSON object: every acknowledged record as [offset, value, acked_at_ms] and
the number of delivery errors.

Used by keel-server's power-cut test, which cuts the broker's simulated power while this
runs. Not idempotent on purpose: after a cut under fsync=interval the broker may have lost
acknowledged batches, which an idempotent producer treats as fatal; a plain one goes on, and
the test counts what was lost. Arguments: bootstrap, topic."""

import json
import sys
import threading
import time

from confluent_kafka import Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": False,
    "linger.ms": 1,
    "retries": 1000000,
    "retry.backoff.ms": 20,
    "reconnect.backoff.ms": 20,
    "reconnect.backoff.max.ms": 100,
    "message.timeout.ms": 60000,
    "socket.timeout.ms": 5000,
})
acked, errors = [], []
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()


def on_delivery(error, message):
    if error is not None:
        errors.append(str(error))
        return
    acked.append([message.offset(), message.value().decode(), int(time.time() * 1000)])


n = 0
while not stop.is_set():
    try:
        producer.produce(topic, value=b"record-%d" % n, partition=0, on_delivery=on_delivery)
        n += 1
    except BufferError:
        pass
    producer.poll(0.002)
left = producer.flush(60)
print(json.dumps({"sent": n, "unflushed": left, "errors": errors[:5], "error_count": len(errors),
                  "acked": acked}))
