"""Consumer groups of kafka-python or confluent-kafka (librdkafka) against keel serve.

Usage: group_consumers.py CLIENT BOOTSTRAP TOPIC GROUP MODE FIRST COUNT
  CLIENT  kafka-python | confluent
  MODE    flow    produce records FIRST..FIRST+COUNT-1 while consumer A runs, B joins, C joins
                  and A leaves (each step waits for the new assignment); then the group of B
                  and C must own every partition exactly once, and every record must have been
                  consumed exactly once.
          resume  produce records FIRST..FIRST+COUNT-1 with no consumer running, then start
                  three consumers in the group: they must consume exactly those records, once
                  each, and nothing committed before (the committed offsets are where they
                  resume; auto.offset.reset=earliest would replay everything if they were lost).

          crash   three consumers, each its own process; while records flow one is killed
                  with SIGKILL (no LeaveGroup): the other two must own every partition after its
                  session times out, every record must be consumed, and only records the killed
                  one consumed but had not committed may be consumed twice.
          member  (internal) one consumer of the crash mode, reporting on stdout.

Consumers commit synchronously after each batch they process, so a partition that moves in a
rebalance continues at the next unprocessed record. Prints one summary line `RESULT {...}`;
exits non-zero with the reason when a check fails.
"""
import json
import signal
import subprocess
import sys
import threading
import time

CLIENT, BOOTSTRAP, TOPIC, GROUP, MODE = sys.argv[1:6]
if MODE == "member":
    MEMBER_NAME = sys.argv[6]
else:
    FIRST, COUNT = int(sys.argv[6]), int(sys.argv[7])
DEADLINE_S = 90
SESSION_MS = 6000
HEARTBEAT_MS = 1000
# The topic's partitions (the Rust test creates it).
PARTITIONS = 6
# Pause between produced records, so production spans the joins and the leave.
PRODUCE_PAUSE_S = 0.005


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def wait_for(what, condition):
    """Waits for `condition` (polled every 50 ms) or fails naming `what` at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class KafkaPythonClient:
    def __init__(self):
        import kafka
        self.kafka = kafka

    def producer(self):
        producer = self.kafka.KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)

        def finish():
            producer.flush(30)
            producer.close()

        return lambda i: producer.send(TOPIC, key=f"k{i}".encode(), value=str(i).encode()), finish

    def consumer(self, name):
        return KafkaPythonConsumer(self.kafka.KafkaConsumer(
            TOPIC,
            bootstrap_servers=BOOTSTRAP,
            group_id=GROUP,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
        ))


class KafkaPythonConsumer:
    def __init__(self, consumer):
        self.consumer = consumer

    def poll(self):
        batches = self.consumer.poll(timeout_ms=200)
        return [(r.partition, r.offset, int(r.value)) for rs in batches.values() for r in rs]

    def commit(self):
        self.consumer.commit()

    def assigned(self):
        return {tp.partition for tp in self.consumer.assignment()}

    def close(self):
        self.consumer.close(autocommit=False)


class ConfluentClient:
    def __init__(self):
        import confluent_kafka
        self.ck = confluent_kafka

    def producer(self):
        producer = self.ck.Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5})
        errors = []

        def delivered(error, _message):
            if error is not None:
                errors.append(str(error))

        def send(i):
            producer.produce(TOPIC, key=f"k{i}", value=str(i), on_delivery=delivered)
            producer.poll(0)

        def finish():
            remaining = producer.flush(30)
            if remaining or errors:
                fail(f"confluent producer: {remaining} unsent, errors {errors[:3]}")

        return send, finish

    def consumer(self, name):
        return ConfluentConsumer(self.ck, self.ck.Consumer({
            "bootstrap.servers": BOOTSTRAP,
            "group.id": GROUP,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
        }))


class ConfluentConsumer:
    def __init__(self, ck, consumer):
        self.ck, self.consumer, self.partitions = ck, consumer, set()

        def on_assign(_consumer, partitions):
            self.partitions = {p.partition for p in partitions}

        def on_revoke(_consumer, _partitions):
            self.partitions = set()

        # With rebalance callbacks, librdkafka hands a revocation to the application inside
        # consume(), after the batch it returned before was processed and committed.
        consumer.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)

    def poll(self):
        records = []
        for message in self.consumer.consume(num_messages=500, timeout=0.2):
            if message.error() is not None:
                fail(f"consume error: {message.error()}")
            records.append((message.partition(), message.offset(), int(message.value())))
        return records

    def commit(self):
        self.consumer.commit(asynchronous=False)

    def assigned(self):
        return set(self.partitions)

    def close(self):
        self.consumer.close()


def consume(client, name, stop, on_batch, on_commit, on_assigned):
    """The consumer loop of every member: poll, hand the batch over, commit it, until `stop`."""
    consumer = client.consumer(name)
    assigned = set()
    while not stop.is_set():
        records = consumer.poll()
        if records:
            on_batch(records)
            consumer.commit()
            on_commit()
        if consumer.assigned() != assigned:
            assigned = consumer.assigned()
            on_assigned(assigned)
    consumer.close()


class Member:
    """One consumer in a thread of this process."""

    def __init__(self, client, name, consumed, lock):
        self.client, self.name = client, name
        self.consumed, self.lock = consumed, lock
        self.stop = threading.Event()
        self.assigned = set()
        self.error = None
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)
        self.thread.start()

    def record(self, records):
        with self.lock:
            self.consumed.extend((self.name,) + r for r in records)

    def run(self):
        try:
            consume(self.client, self.name, self.stop, self.record, lambda: None,
                    lambda assigned: setattr(self, "assigned", assigned))
        except Exception as error:  # reported by the main thread
            self.error = f"{self.name}: {error!r}"

    def leave(self):
        self.stop.set()
        self.thread.join(30)
        if self.thread.is_alive():
            fail(f"{self.name} did not close")


class ProcessMember:
    """One consumer in a child process (so it can be killed), reporting each batch, each
    commit and each assignment on its stdout."""

    def __init__(self, name, consumed, lock):
        self.name, self.consumed, self.lock = name, consumed, lock
        self.assigned = set()
        self.error = None
        self.uncommitted = []
        self.process = subprocess.Popen(
            [sys.executable, __file__, CLIENT, BOOTSTRAP, TOPIC, GROUP, "member", name],
            stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self.read, name=name, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.process.stdout:
            kind, _, rest = line.strip().partition(" ")
            if kind == "BATCH":
                records = [tuple(int(x) for x in r.split(":")) for r in rest.split()]
                with self.lock:
                    self.consumed.extend((self.name,) + r for r in records)
                self.uncommitted = [value for *_, value in records]
            elif kind == "COMMITTED":
                self.uncommitted = []
            elif kind == "ASSIGNED":
                self.assigned = {int(p) for p in rest.split()}
        if self.process.wait() not in (0, -signal.SIGKILL):
            self.error = f"{self.name} exited with {self.process.returncode}"

    def kill(self):
        self.process.kill()
        self.reader.join(30)

    def leave(self):
        self.process.terminate()
        self.reader.join(30)
        if self.reader.is_alive():
            fail(f"{self.name} did not close")


def run_member():
    """The child side of ProcessMember; SIGTERM closes the consumer (LeaveGroup)."""
    client = KafkaPythonClient() if CLIENT == "kafka-python" else ConfluentClient()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def say(line):
        print(line, flush=True)

    consume(
        client, MEMBER_NAME, stop,
        lambda records: say("BATCH " + " ".join(f"{p}:{o}:{v}" for p, o, v in records)),
        lambda: say("COMMITTED"),
        lambda assigned: say("ASSIGNED " + " ".join(str(p) for p in sorted(assigned))),
    )


def check_members(members):
    for member in members:
        if member.error:
            fail(member.error)


def main():
    client = KafkaPythonClient() if CLIENT == "kafka-python" else ConfluentClient()
    consumed, lock = [], threading.Lock()
    send, finish = client.producer()
    expected = set(range(FIRST, FIRST + COUNT))

    def consumed_values():
        with lock:
            return [value for *_, value in consumed]

    steps = []
    produced = [0]

    def produce():
        for i in range(FIRST, FIRST + COUNT):
            send(i)
            produced[0] += 1
            time.sleep(PRODUCE_PAUSE_S)
        finish()

    producer = threading.Thread(target=produce, name="producer", daemon=True)
    allowed_twice = set()
    if MODE == "flow":
        members = {"A": Member(client, f"{CLIENT}-A", consumed, lock)}
        wait_for("A's first assignment", lambda: members["A"].assigned)
        producer.start()
        for fraction, name, action in [(0.2, "B", "joins"), (0.4, "C", "joins"), (0.6, "A", "leaves")]:
            wait_for(f"{fraction:.0%} of the records produced", lambda: produced[0] >= fraction * COUNT)
            started = produced[0]
            if action == "joins":
                members[name] = Member(client, f"{CLIENT}-{name}", consumed, lock)
                wait_for(f"{name}'s assignment", lambda: members[name].assigned)
            else:
                members.pop(name).leave()
            steps.append({"step": f"{name} {action}", "produced_before": started,
                          "produced_after": produced[0]})
            check_members(members.values())
        producer.join(DEADLINE_S)
        wait_for("every record", lambda: set(consumed_values()) >= expected)
        # The steady state after the last step: B and C own every partition, once.
        wait_for(
            "B and C to split the partitions",
            lambda: members["B"].assigned and members["C"].assigned
            and not (members["B"].assigned & members["C"].assigned)
            and len(members["B"].assigned | members["C"].assigned) == PARTITIONS,
        )
        final = {n: sorted(m.assigned) for n, m in members.items()}
    elif MODE == "crash":
        members = {n: ProcessMember(f"{CLIENT}-{n}", consumed, lock) for n in "XYZ"}
        wait_for("X, Y and Z to share the partitions",
                 lambda: len(set().union(*(m.assigned for m in members.values()))) == PARTITIONS
                 and all(m.assigned for m in members.values()))
        producer.start()
        wait_for("half of the records produced", lambda: produced[0] >= COUNT // 2)
        killed = members.pop("Z")
        killed.kill()
        killed_at = time.monotonic()
        allowed_twice = set(killed.uncommitted)
        # Z's partitions move only after its session times out; until then X and Y hold four.
        wait_for("X and Y to take over Z's partitions",
                 lambda: not (members["X"].assigned & members["Y"].assigned)
                 and len(members["X"].assigned | members["Y"].assigned) == PARTITIONS)
        steps.append({"step": "Z killed", "produced_before": COUNT // 2,
                      "takeover_ms": round((time.monotonic() - killed_at) * 1000)})
        producer.join(DEADLINE_S)
        wait_for("every record", lambda: set(consumed_values()) >= expected)
        final = {n: sorted(m.assigned) for n, m in members.items()}
    else:
        for i in range(FIRST, FIRST + COUNT):
            send(i)
        finish()
        members = {n: Member(client, f"{CLIENT}-{n}", consumed, lock) for n in "DEF"}
        wait_for("the restarted group to consume the new records",
                 lambda: set(consumed_values()) >= expected)
        final = {}
    check_members(members.values())
    for member in members.values():
        member.leave()
    check_members(members.values())

    values = consumed_values()
    seen, twice = set(), set()
    for value in values:
        (twice if value in seen else seen).add(value)
    duplicates = len(twice - allowed_twice)
    unexpected = sorted(set(values) - expected)[:5]
    by_member = {}
    for name, *_ in consumed:
        by_member[name] = by_member.get(name, 0) + 1
    print("RESULT " + json.dumps({
        "client": CLIENT, "mode": MODE, "consumed": len(values), "distinct": len(set(values)),
        "duplicates": duplicates, "redelivered_after_kill": len(twice & allowed_twice),
        "unexpected": unexpected, "by_member": by_member,
        "steps": steps, "final_assignment": final,
    }), flush=True)
    if unexpected:
        fail(f"consumed records that were committed before: {unexpected}")
    if duplicates:
        fail(f"{duplicates} records consumed more than once")


if __name__ == "__main__":
    if MODE == "member":
        run_member()
    else:
        main()
