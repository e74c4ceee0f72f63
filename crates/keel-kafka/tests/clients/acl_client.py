"""Kafka ACLs with real clients over SASL/SCRAM-SHA-512, printing one JSON object per step.

Usage: acl_client.py STEP bootstrap topic user password [target user]

Steps:
  produce-confluent   confluent-kafka produces one record; {"error": code name} or {"ok": true}
  produce-python      kafka-python produces one record; {"error": class, "code": n} or {"ok": true}
  consume-confluent   confluent-kafka consumes from the start in group "<user>-readers";
                      {"consumed": [...]} or {"error": code name}
  grant               confluent-kafka's AdminClient (as the user, a super user) allows user
                      "bob" Write and Read on the topic and Read on group "bob-readers", then
                      lists the ACLs on the topic; {"described": [...]}
  revoke              the AdminClient deletes bob's ACLs on the topic; {"deleted": n}
  scram-add           the AdminClient gives the target user a SCRAM-SHA-512 credential with
                      password "<target>-secret" (AlterUserScramCredentials); {"ok": true} or
                      {"error": code name}
  scram-describe      the AdminClient lists the target user's credentials
                      (DescribeUserScramCredentials); {"credentials": ["SCRAM_SHA_512 4096"]}
                      or {"error": code name}
  scram-delete        the AdminClient deletes the target's SCRAM-SHA-512 credential
"""

import json
import sys
import time

step, bootstrap, topic, user, password = sys.argv[1:6]
target = sys.argv[6] if len(sys.argv) > 6 else None
common = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
          "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password}


def produce_confluent():
    from confluent_kafka import Producer
    delivered, errors = [], []
    producer = Producer({**common, "acks": "all", "message.timeout.ms": 10000,
                         "error_cb": errors.append})
    producer.produce(topic, value=f"{user}-value".encode(), partition=0,
                     on_delivery=lambda error, _m: delivered.append(error))
    deadline = time.monotonic() + 15
    while not delivered and time.monotonic() < deadline:
        producer.poll(0.1)
        if any("Authentication" in e.str() for e in errors):
            return {"error": "authentication failed"}
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


def scram(alteration):
    from confluent_kafka import KafkaException
    client = admin()
    try:
        for future in client.alter_user_scram_credentials([alteration],
                                                          request_timeout=15).values():
            future.result()
        return {"ok": True}
    except KafkaException as error:
        return {"error": error.args[0].name()}


def scram_add():
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    return scram(UserScramCredentialUpsertion(target, info, f"{target}-secret".encode()))


def scram_delete():
    from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion
    return scram(UserScramCredentialDeletion(target, ScramMechanism.SCRAM_SHA_512))


def scram_describe():
    from confluent_kafka import KafkaException
    client = admin()
    try:
        described = client.describe_user_scram_credentials([target], request_timeout=15)
        result = described[target].result()
        return {"credentials": [f"{c.mechanism.name} {c.iterations}"
                                for c in result.scram_credential_infos]}
    except KafkaException as error:
        return {"error": error.args[0].name()}


steps = {"produce-confluent": produce_confluent, "produce-python": produce_python,
         "consume-confluent": consume_confluent, "grant": grant, "revoke": revoke,
         "scram-add": scram_add, "scram-describe": scram_describe, "scram-delete": scram_delete}
print(json.dumps(steps[step]()))
