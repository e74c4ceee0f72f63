"""Confluent's Avro and Protobuf serializers against Keel's schema registry, with references.

Usage: schema_registry_formats.py REGISTRY_URL. Prints one JSON object per step on stdout;
the Rust test (`tests/schema_registry.rs`) checks them. Any unexpected exception fails the
script with a non-zero exit.

- Avro: `shop.Address` registered on its own subject; `shop.Order` referencing it registered
  with `references`; `AvroSerializer` frames an order, `AvroDeserializer` reads it back by id
  (fetching the reference); a new field without a default is refused with Confluent's 409.
- Protobuf: the message classes are built from descriptors at run time (no protoc here);
  `ProtobufSerializer` registers `shop/address.proto` as a reference of `shop/order.proto`
  (base64 descriptors, as this client sends them), frames an order with its message
  indexes, and `ProtobufDeserializer` reads it back through the registry.
"""

import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def report(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


client = SchemaRegistryClient({"url": sys.argv[1]})

# --- Avro, with a reference -------------------------------------------------------------
ADDRESS = json.dumps({"type": "record", "name": "Address", "namespace": "shop",
                      "fields": [{"name": "zip", "type": "string"}]})
ORDER = json.dumps({"type": "record", "name": "Order", "namespace": "shop",
                    "fields": [{"name": "id", "type": "string"},
                               {"name": "total_cents", "type": "long"},
                               {"name": "ship_to", "type": "shop.Address"}]})
address_id = client.register_schema("shop.Address", Schema(ADDRESS, "AVRO"))
reference = SchemaReference("shop.Address", "shop.Address", 1)
order_schema = Schema(ORDER, "AVRO", [reference])
order_id = client.register_schema("orders-avro-value", order_schema)
report("avro_registered", address_id=address_id, order_id=order_id)

avro_context = SerializationContext("orders-avro", MessageField.VALUE)
serializer = AvroSerializer(client, order_schema,
                            conf={"auto.register.schemas": False, "use.latest.version": True})
order = {"id": "o-1", "total_cents": 4200, "ship_to": {"zip": "75001"}}
payload = serializer(order, avro_context)
report("avro_serialized", magic=payload[0], id=int.from_bytes(payload[1:5], "big"))
report("avro_deserialized", record=AvroDeserializer(client)(payload, avro_context))
report("avro_referenced_by", ids=client.get_referenced_by("shop.Address", 1))

BREAKING = json.loads(ORDER)
BREAKING["fields"].append({"name": "coupon", "type": "string"})
try:
    client.register_schema("orders-avro-value", Schema(json.dumps(BREAKING), "AVRO", [reference]))
    raise AssertionError("a field without a default was accepted")
except SchemaRegistryError as error:
    report("avro_incompatible", http=error.http_status_code, code=error.error_code,
           message=error.error_message)

# --- Protobuf, with an import through a reference ---------------------------------------
address_file = descriptor_pb2.FileDescriptorProto(name="shop/address.proto", package="shop", syntax="proto3")
address_message = address_file.message_type.add(name="Address")
address_message.field.add(name="zip", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
order_file = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3",
                                                dependency=["shop/address.proto"])
order_message = order_file.message_type.add(name="Order")
order_message.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
order_message.field.add(name="total_cents", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
order_message.field.add(name="ship_to", number=3, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                        type_name=".shop.Address", label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
pool = descriptor_pool.DescriptorPool()
pool.Add(address_file)
pool.Add(order_file)
Order = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
Address = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Address"))

proto_context = SerializationContext("orders-proto", MessageField.VALUE)
proto_serializer = ProtobufSerializer(Order, client, {"use.deprecated.format": False})
message = Order(id="o-2", total_cents=990, ship_to=Address(zip="10115"))
framed = proto_serializer(message, proto_context)
report("protobuf_serialized", magic=framed[0], id=int.from_bytes(framed[1:5], "big"),
       index=framed[5], subjects=sorted(client.get_subjects()))
proto_deserializer = ProtobufDeserializer(Order, {"use.deprecated.format": False}, client)
decoded = proto_deserializer(framed, proto_context)
report("protobuf_deserialized", id=decoded.id, total_cents=decoded.total_cents, zip=decoded.ship_to.zip)
latest = client.get_latest_version("orders-proto-value")
report("protobuf_latest", schema_type=latest.schema.schema_type,
       references=[[r.name, r.subject, r.version] for r in latest.schema.references])
