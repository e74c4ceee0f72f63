//! Schema references in the registry, for JSON Schema and Avro: a schema names another
//! registered version (Confluent's `references`), is compared and validated with it, is
//! listed by `referenced_by`, keeps the referenced version from being deleted, and is read
//! back after a restart.

use keel_log::Log;
use keel_schema::{
    CompatibilityLevel, PayloadValidator, Reference, Registry, RegistryError, SchemaType,
    VersionSelector,
};
use serde_json::json;

fn reference(name: &str, subject: &str, version: u32) -> Reference {
    Reference {
        name: name.into(),
        subject: subject.into(),
        version,
    }
}

/// Parses `text` with `references` in `registry` and registers it under `subject`.
fn register(
    registry: &Registry,
    subject: &str,
    schema_type: SchemaType,
    text: &str,
    references: &[Reference],
) -> Result<(u32, u32), RegistryError> {
    let schema = registry.parse(schema_type, text, references)?;
    let found = registry.register(subject, schema_type, schema)?;
    Ok((found.version, found.id))
}

const ADDRESS_V1: &str = r#"{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"zip","type":"int"}]}"#;
const ADDRESS_V2: &str = r#"{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"zip","type":"string"}]}"#;
const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"},{"name":"ship_to","type":"shop.Address"}]}"#;

#[test]
fn avro_references_resolve_guard_deletes_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (order_id, order_v2_error) = {
        let log = Log::open(dir.path()).unwrap();
        let registry = Registry::open(&log).unwrap();
        let avro = SchemaType::Avro;
        register(&registry, "address", avro, ADDRESS_V1, &[]).unwrap();
        register(&registry, "address", avro, ADDRESS_V2, &[])
            .map(drop)
            .unwrap_err();
        registry
            .set_level(Some("address"), Some(CompatibilityLevel::None))
            .unwrap();
        assert_eq!(
            register(&registry, "address", avro, ADDRESS_V2, &[])
                .unwrap()
                .0,
            2
        );

        // Without its reference, the order's type name does not resolve.
        let unresolved = register(&registry, "order", avro, ORDER, &[]).unwrap_err();
        assert!(
            unresolved.to_string().contains("invalid schema"),
            "{unresolved}"
        );
        let missing = register(
            &registry,
            "order",
            avro,
            ORDER,
            &[reference("shop.Address", "address", 9)],
        )
        .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("version 9 of subject \"address\""),
            "{missing}"
        );

        let v1 = [reference("shop.Address", "address", 1)];
        let (version, order_id) = register(&registry, "order", avro, ORDER, &v1).unwrap();
        assert_eq!(version, 1);
        // The same text over the same references is the same schema; over others, another.
        assert_eq!(
            register(&registry, "order", avro, ORDER, &v1).unwrap(),
            (1, order_id)
        );
        let v2 = [reference("shop.Address", "address", 2)];
        let order_v2_error = register(&registry, "order", avro, ORDER, &v2).unwrap_err();

        assert_eq!(
            registry
                .referenced_by("address", VersionSelector::Number(1))
                .unwrap(),
            [order_id]
        );
        assert!(
            registry
                .referenced_by("address", VersionSelector::Number(2))
                .unwrap()
                .is_empty()
        );
        let refused = registry
            .delete_version("address", VersionSelector::Number(1), false)
            .unwrap_err();
        assert!(
            matches!(refused, RegistryError::ReferenceExists { version: 1, .. }),
            "{refused}"
        );
        (order_id, order_v2_error.to_string())
    };
    // The zip changed type inside the referenced record: the order cannot read old orders.
    assert!(
        order_v2_error.contains("#/fields/1/type/fields/0/type: TYPE_MISMATCH"),
        "{order_v2_error}"
    );

    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    assert_eq!(registry.skipped_records(), 0);
    let (_, order) = registry.schema_by_id(order_id).unwrap();
    assert_eq!(
        order.references(),
        [reference("shop.Address", "address", 1)]
    );
    let bytes =
        keel_schema::encode_avro(&order, &json!({"id": "o-1", "ship_to": {"zip": 75001}})).unwrap();
    assert_eq!(
        keel_schema::decode_avro(&order, None, &bytes).unwrap(),
        json!({"id": "o-1", "ship_to": {"zip": 75001}})
    );
}

#[test]
fn json_schema_references_are_bundled_for_validation_and_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let registry = Registry::open(&log).unwrap();
    let json = SchemaType::Json;
    let address = r##"{"type":"object","properties":{"zip":{"$ref":"#/$defs/zip"}},"required":["zip"],"$defs":{"zip":{"type":"string","pattern":"^[0-9]{5}$"}}}"##;
    register(&registry, "address.json", json, address, &[]).unwrap();
    let order = r#"{"type":"object","properties":{"id":{"type":"string"},"ship_to":{"$ref":"address.json"}},"required":["id","ship_to"]}"#;
    let refs = [reference("address.json", "address.json", 1)];
    let (_, id) = register(&registry, "order-value", json, order, &refs).unwrap();

    let validator = PayloadValidator::new(&registry.schema_by_id(id).unwrap().1);
    validator
        .validate(&json!({"id": "o-1", "ship_to": {"zip": "75001"}}))
        .unwrap();
    let refused = validator
        .validate(&json!({"id": "o-1", "ship_to": {"zip": "7500"}}))
        .unwrap_err();
    assert_eq!(refused.path, "/ship_to/zip");

    // A narrower address, referenced by a new order version: refused through the reference.
    let narrower = address.replace(
        r#""type":"string","pattern""#,
        r#""type":"string","maxLength":3,"pattern""#,
    );
    registry
        .set_level(Some("address.json"), Some(CompatibilityLevel::None))
        .unwrap();
    register(&registry, "address.json", json, &narrower, &[]).unwrap();
    let error = register(
        &registry,
        "order-value",
        json,
        order,
        &[reference("address.json", "address.json", 2)],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("#/properties/ship_to/properties/zip/maxLength: RANGE_NARROWED"),
        "{error}"
    );
    // A reference of another type is refused.
    let avro = register(&registry, "avro-order", SchemaType::Avro, ORDER, &refs).unwrap_err();
    assert!(avro.to_string().contains("names a JSON schema"), "{avro}");
}
