"""A confluent-kafka producer (acks=all, idempotent) that, after one warm-up record, keeps
sending records (serving its
delivery reports for up to 20 ms between two) for the given number of seconds and prints one JSON line: records sent, delivered, failed, and
the slowest delivery in milliseconds (from produce() to the delivery report).

Used by keel-kafka's limits test to show that a flood of idle and half-sent connections
does not keep a real client from producing. Arguments: bootstrap, topic, seconds."""

import json
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 0,
    "message.timeout.ms": 10000,
})
sent, delivered, failed, slowest_ms = 0, 0, [], 0.0

# The first record waits for metadata, a connection and a producer id (about 0.5 s on an idle
# machine): flushed before the measured part, which is about the broker serving a running
# client, not about the client starting.
producer.produce(topic, value=b"warm-up")
producer.flush(10)


def report(started):
    def on_delivery(error, _message):
        global delivered, slowest_ms
        if error is not None:
            failed.append(str(error))
            return
        delivered += 1
        slowest_ms = max(slowest_ms, (time.monotonic() - started) * 1000)
    return on_delivery


end = time.monotonic() + seconds
while time.monotonic() < end:
    producer.produce(topic, value=b"steady-%d" % sent, on_delivery=report(time.monotonic()))
    sent += 1
    producer.poll(0.02)
producer.flush(15)
print(json.dumps({"sent": sent + 1, "delivered": delivered, "failed": failed[:5],
                  "slowest_ms": round(slowest_ms, 1)}))
