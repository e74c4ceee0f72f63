"""Confluent's own Python client against Keel's schema registry API.

Usage: schema_registry_client.py REGISTRY_URL. Prints one JSON object per step on stdout;
the Rust test (`tests/schema_registry.rs`) checks them. Any unexpected exception fails the
script with a non-zero exit.
"""

import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def report(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def error_of(call):
    try:
        call()
    except SchemaRegistryError as error:
        return {"http": error.http_status_code, "code": error.error_code, "message": error.error_message}
    raise AssertionError("expected a SchemaRegistryError")


def contract(properties, required):
    return json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "OrderPlaced",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    })


V1 = contract({"order_id": {"type": "string"}, "total": {"type": "integer"}}, ["order_id", "total"])
V2 = contract({"order_id": {"type": "string"}, "total": {"type": "integer"}, "note": {"type": "string"}}, ["order_id", "total"])
BREAKING = contract({"order_id": {"type": "string"}, "total": {"type": "string"}}, ["order_id", "total"])

client = SchemaRegistryClient({"url": sys.argv[1]})
context = SerializationContext("orders", MessageField.VALUE)

serializer = JSONSerializer(V1, client, conf={"auto.register.schemas": True})
record = {"order_id": "o-1", "total": 42}
payload = serializer(record, context)
schema_id = int.from_bytes(payload[1:5], "big")
report("serialized", magic=payload[0], id=schema_id, length=len(payload))

deserializer = JSONDeserializer(None, schema_registry_client=client)
report("deserialized", record=deserializer(payload, context))

fetched = client.get_schema(schema_id)
report("fetched", schema_type=fetched.schema_type, schema=json.loads(fetched.schema_str))

latest = client.get_latest_version("orders-value")
report("latest", version=latest.version, id=latest.schema_id, subject=latest.subject)

report("compatible_check", v2=client.test_compatibility("orders-value", Schema(V2, "JSON")),
       breaking=client.test_compatibility("orders-value", Schema(BREAKING, "JSON")))

v2_id = client.register_schema("orders-value", Schema(V2, "JSON"))
report("registered_v2", id=v2_id, versions=client.get_versions("orders-value"))

report("incompatible", **error_of(lambda: client.register_schema("orders-value", Schema(BREAKING, "JSON"))))

try:
    serializer({"order_id": "o-2", "total": "forty-two"}, context)
    report("invalid_record", refused=False)
except Exception as error:  # the serializer validates before it sends anything
    report("invalid_record", refused=True, kind=type(error).__name__)

client.set_compatibility("orders-value", "FULL")
report("config", subject=client.get_compatibility("orders-value"), default=client.get_compatibility())

report("subjects", names=client.get_subjects())
report("missing_subject", **error_of(lambda: client.get_latest_version("missing")))
report("missing_version", **error_of(lambda: client.get_version("orders-value", 99)))
report("missing_id", **error_of(lambda: client.get_schema(999)))
report("invalid_schema", **error_of(lambda: client.register_schema("bad", Schema('{"type": "strnig"}', "JSON"))))

report("soft_deleted", version=client.delete_version("orders-value", 2), versions=client.get_versions("orders-value"))
