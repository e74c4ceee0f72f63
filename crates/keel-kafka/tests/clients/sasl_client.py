"""Produces three records and consumes them back with SASL (and TLS when a CA file is
given), using confluent-kafka or kafka-python, and prints one JSON object: the values
consumed, or the error the client reported (its name and Kafka error code).

Arguments: client (confluent | kafka-python), bootstrap, topic, user, password, mechanism,
security protocol (SASL_PLAINTEXT | SASL_SSL), CA file or "-"."""

import json
import sys

client, bootstrap, topic, user, password, mechanism, protocol, ca = sys.argv[1:9]
values = [f"{client}-{i}".encode() for i in range(3)]


def confluent():
    import time
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    common = {"bootstrap.servers": bootstrap, "security.protocol": protocol,
              "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password}
    if ca != "-":
        common["ssl.ca.location"] = ca
    errors = []
    producer = Producer({**common, "acks": "all", "message.timeout.ms": 10000,
                         "error_cb": lambda e: errors.append(e)})
    delivered = []
    for value in values:
        producer.produce(topic, value=value, partition=0,
                         on_delivery=lambda error, _m: delivered.append(error))
    deadline = time.monotonic() + 15
    while len(delivered) < len(values) and time.monotonic() < deadline:
        producer.poll(0.1)
        fatal = [e for e in errors if "Authentication" in e.str() or "SASL" in e.str()]
        if fatal:
            return {"error": fatal[0].name(), "message": fatal[0].str()}
    consumer = Consumer({**common, "group.id": f"{client}-readers", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < len(values):
        message = consumer.poll(10)
        if message is None:
            break
        if message.error():
            raise KafkaException(message.error())
        got.append(message.value().decode())
    consumer.close()
    return {"consumed": got}


def kafka_python():
    import logging
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError, SaslAuthenticationFailedError

    # kafka-python reports a refused authentication in its connection log and then gives up
    # bootstrapping; the log line names the error class the broker's code mapped to.
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("kafka").addHandler(handler)
    common = {"bootstrap_servers": bootstrap, "security_protocol": protocol,
              "sasl_mechanism": mechanism, "sasl_plain_username": user,
              "sasl_plain_password": password}
    if ca != "-":
        common["ssl_cafile"] = ca
        common["ssl_check_hostname"] = False
    try:
        producer = KafkaProducer(acks="all", max_block_ms=10000, **common)
        for value in values:
            producer.send(topic, value=value, partition=0).get(timeout=15)
        producer.close()
        from kafka import TopicPartition
        consumer = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=10000, **common)
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        got = []
        for message in consumer:
            got.append(message.value.decode())
            if len(got) == len(values):
                break
        consumer.close()
        return {"consumed": got}
    except KafkaError as error:
        refused = SaslAuthenticationFailedError.__name__
        if any(refused in line for line in seen):
            return {"error": refused, "code": SaslAuthenticationFailedError.errno,
                    "message": next(line for line in seen if refused in line)}
        return {"error": type(error).__name__, "code": getattr(error, "errno", None),
                "message": str(error)}


print(json.dumps(confluent() if client == "confluent" else kafka_python()))
