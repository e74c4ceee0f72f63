"""Durable one-record writes through confluent-kafka (librdkafka): each produce request carries
one record (batch.num.messages=1, linger.ms=0) with acks=all, so under the topic's
fsync=always every request waits for an fdatasync. A measurement for BENCHMARKS.md, not a
test; scripts/bench-kafka acks runs it. Prints one JSON line.

  kafka_acks.py BOOTSTRAP TOPIC latency RATE SECONDS
      One producer at RATE records/s: the acknowledgement latency librdkafka measured for
      each record (produce() to its delivery report, Message.latency()), p50/p99/max, and the
      rate acknowledged (what is not acknowledged 30 s after the last send is dropped and
      counted as unflushed).
  kafka_acks.py BOOTSTRAP TOPIC producers N SECONDS
      N producer processes, each sending as fast as its 5 requests in flight allow
      (idempotent, as the Java client's default): records acknowledged within the SECONDS,
      per second, over all of them.

No process spins: confluent-kafka's poll() rounds its timeout down to whole milliseconds, so
polling for less than one (or produce() and poll(0) in a loop) is a busy loop; 16 of them
took the machine's 2 cores from the broker they measured. A producer keeps WINDOW records
queued or in flight and blocks in poll() until a delivery makes room; the latency mode sleeps
until its next record is due.
"""

import json
import multiprocessing
import sys
import time

from confluent_kafka import Producer

# Records a saturating producer keeps queued or in flight: its 5 requests in flight and
# enough behind them that one is always ready when an acknowledgement frees a slot.
WINDOW = 64
# The latency mode's shortest sleep: at 10,000/s it sends the records due in 200 us together.
PACING_TICK_S = 0.0002


def producer(bootstrap, idempotent):
    return Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 0,
        "batch.num.messages": 1,
        "enable.idempotence": idempotent,
        "max.in.flight.requests.per.connection": 5,
        "queue.buffering.max.messages": 10000,
        "message.timeout.ms": 120000,
    })


def warm_up(client, topic):
    """The first record waits for metadata, a connection and (idempotent) a producer id."""
    client.produce(topic, value=b"warm-up", partition=0)
    if client.flush(30) != 0:
        sys.exit("the warm-up record was not acknowledged")


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def latency(bootstrap, topic, rate, seconds):
    client = producer(bootstrap, False)
    warm_up(client, topic)
    latencies, errors = [], []

    def on_delivery(error, message):
        if error is not None:
            errors.append(str(error))
        else:
            latencies.append(message.latency())

    total = int(rate * seconds)
    sent, start = 0, time.monotonic()
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate))
        while sent < due:
            client.produce(topic, value=b"%099d" % sent, partition=0, on_delivery=on_delivery)
            sent += 1
        # Delivery reports carry librdkafka's own latency, so serving them late costs nothing.
        client.poll(0)
        time.sleep(max(PACING_TICK_S, start + (sent + 1) / rate - time.monotonic()))
    # A server that cannot keep up would leave a backlog of minutes: what is not acknowledged
    # 30 s after the last send is dropped and reported as unflushed.
    left = client.flush(30)
    elapsed = time.monotonic() - start
    if left:
        client.purge()
        client.flush(5)
    values = sorted(latencies)
    ms = lambda s: round(s * 1000, 3)
    return {"mode": "ack-latency", "rate_per_s": rate, "seconds": seconds, "sent": sent,
            "acked": len(values), "acked_per_s": round(len(values) / elapsed),
            "unflushed": left, "errors": errors[:3],
            "p50_ms": ms(percentile(values, 0.50)), "p99_ms": ms(percentile(values, 0.99)),
            "max_ms": ms(values[-1])}


def one_producer(args):
    bootstrap, topic, seconds = args
    client = producer(bootstrap, True)
    warm_up(client, topic)
    acked, settled, sent = [0], [0], 0

    def on_delivery(error, _message):
        settled[0] += 1
        if error is None:
            acked[0] += 1

    start = time.monotonic()
    while time.monotonic() - start < seconds:
        while sent - settled[0] < WINDOW:
            client.produce(topic, value=b"x" * 100, partition=0, on_delivery=on_delivery)
            sent += 1
        client.poll(0.1)  # returns once it served a delivery report
    # Only what was acknowledged within the window counts; the backlog is dropped.
    in_window, elapsed = acked[0], time.monotonic() - start
    client.purge()
    client.flush(5)
    return in_window, elapsed


def producers(bootstrap, topic, n, seconds):
    with multiprocessing.Pool(n) as pool:
        results = pool.map(one_producer, [(bootstrap, topic, seconds)] * n)
    acked = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results)
    return {"mode": "producers", "producers": n, "seconds": seconds, "acked": acked,
            "acked_per_s": round(acked / elapsed)}


if __name__ == "__main__":
    bootstrap, topic, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "latency":
        result = latency(bootstrap, topic, float(sys.argv[4]), float(sys.argv[5]))
    elif mode == "producers":
        result = producers(bootstrap, topic, int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")
    print(json.dumps(result))
