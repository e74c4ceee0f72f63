"""Kafka ACLs with real clients over SASL/SCRAM-SHA-512, printing one JSON object per step.

Usage: acl_client.py STEP bootstrap topic user password

Steps:
  produce-confluent   confluent-kafka produces one record; {"error": code name} or {"ok": true}
  produce-python      kafka-python produces one record; {"error": class, "code": n} or {"ok": true}
  consume-confluent   confluent-kafka consumes from the start in group "<user>-readers";
                      {"consumed": [...]} or {"error": code name}
  grant               confluent-kafka's AdminClient (as the user, a super user) allows user
                      "bob" Write and Read on the topic and Read on group "bob-readers", then
                      lists the ACLs on the topic; {"described": [...]}
  revoke              the AdminClient deletes bob's ACLs on the topic; {"deleted": n}
"""

import json
import sys
import time

step, bootstrap, topic, user, password = sys.argv[1:6]
common = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
          "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password}


def produce_confluent():
    from confluent_kafka import Producer
    delivered = []
    producer = Producer({**common, "acks": "all", "message.timeout.ms": 10000})
    producer.produce(topic, value=f"{user}-value".encode(), partition=0,
                     on_delivery=lambda error, _m: delivered.append(error))
    deadline = time.monotonic() + 15
    while not delivered and time.monotonic() < deadline:
        producer.poll(0.1)
    if not delivered:
        return {"error": "no delivery report"}
    error = delivered[0]
    return {"ok": True} if error is None else {"error": error.name(), "code": error.code()}


def produce_python():
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                                 sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=user,
                                 sasl_plain_password=password, acks="all", max_block_ms=10000,
                                 retries=0)
        producer.send(topic, value=f"{user}-python".encode(), partition=0).get(timeout=15)
        producer.close()
        return {"ok": True}
    except KafkaError as error:
        return {"error": type(error).__name__, "code": getattr(error, "errno", None)}


def consume_confluent():
    from confluent_kafka import Consumer
    consumer = Consumer({**common, "group.id": f"{user}-readers", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            if got:
                break
            continue
        if message.error():
            consumer.close()
            return {"error": message.error().name(), "code": message.error().code()}
        got.append(message.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    return {"consumed": got}


def admin():
    from confluent_kafka.admin import AdminClient
    return AdminClient(common)


def bob_on_topic():
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    return AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:bob",
                            None, AclOperation.ANY, AclPermissionType.ANY)


def grant():
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    allow = [(ResourceType.TOPIC, topic, AclOperation.WRITE),
             (ResourceType.TOPIC, topic, AclOperation.READ),
             (ResourceType.GROUP, "bob-readers", AclOperation.READ)]
    bindings = [AclBinding(kind, name, ResourcePatternType.LITERAL, "User:bob", "*", operation,
                           AclPermissionType.ALLOW) for kind, name, operation in allow]
    client = admin()
    for future in client.create_acls(bindings, request_timeout=15).values():
        future.result()
    described = client.describe_acls(bob_on_topic(), request_timeout=15).result()
    return {"described": sorted(f"{b.principal} {b.operation.name} {b.permission_type.name}"
                                for b in described)}


def revoke():
    client = admin()
    deleted = client.delete_acls([bob_on_topic()], request_timeout=15)
    return {"deleted": sum(len(future.result()) for future in deleted.values())}


steps = {"produce-confluent": produce_confluent, "produce-python": produce_python,
         "consume-confluent": consume_confluent, "grant": grant, "revoke": revoke}
print(json.dumps(steps[step]()))
