//! A document the refresh pipeline really published, checked against the schema the
//! API's `/openapi.json` declares for the snapshot route's body
//! (`api-service/tests/openapi.json`, which api-service's own test keeps equal to what it
//! serves).
//!
//! The check is written here for the dialect poem-openapi emits (OpenAPI 3.0: `$ref`,
//! `allOf`, `nullable`, `type` with `format`, `enum`) instead of using a JSON Schema
//! validator: a JSON Schema validator reads `nullable` as an unknown keyword (so a null
//! `description` would fail `type: string`), and it accepts properties a schema does not
//! list, where this check refuses them — every field the refresher writes must be
//! declared.

use chrono::DateTime;
use serde_json::{Map, Value};

use refresh_service::pipeline::attempt::{Outcome, refresh};

use crate::helpers::*;

const OPENAPI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../api-service/tests/openapi.json"
);

/// Checks `value` against `schema`, resolving references in `schemas`.
fn check(
    value: &Value,
    schema: &Value,
    schemas: &Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{at}: unsupported $ref {reference}"))?;
        let target = schemas
            .get(name)
            .ok_or_else(|| format!("{at}: no schema {name}"))?;
        return check(value, target, schemas, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        return all
            .iter()
            .try_for_each(|part| check(value, part, schemas, at));
    }
    if value.is_null() {
        return match schema["nullable"].as_bool() == Some(true) || schema["type"].is_null() {
            true => Ok(()),
            false => Err(format!("{at}: null where {schema} is not nullable")),
        };
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let format = schema["format"].as_str().unwrap_or("");
    let fits = match schema["type"].as_str() {
        None => true,
        Some("object") => return check_object(value, schema, schemas, at),
        Some("array") => {
            let items = value
                .as_array()
                .ok_or_else(|| format!("{at}: not an array"))?;
            return items.iter().enumerate().try_for_each(|(i, item)| {
                check(item, &schema["items"], schemas, &format!("{at}[{i}]"))
            });
        }
        Some("string") => match (value.as_str(), format) {
            (Some(text), "date-time") => DateTime::parse_from_rfc3339(text).is_ok(),
            (Some(_), _) => true,
            (None, _) => false,
        },
        Some("integer") => match format {
            "int64" | "int32" => value.is_i64(),
            "uint64" | "uint32" => value.is_u64(),
            _ => value.is_i64() || value.is_u64(),
        },
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => return Err(format!("{at}: unsupported type {other}")),
    };
    match fits {
        true => Ok(()),
        false => Err(format!("{at}: {value} is not {schema}")),
    }
}

/// Every required property present, every property declared and valid.
fn check_object(
    value: &Value,
    schema: &Value,
    schemas: &Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("{at}: not an object"))?;
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !object.contains_key(name) {
            return Err(format!("{at}: required {name} missing"));
        }
    }
    for (name, field) in object {
        let declared = properties
            .get(name)
            .ok_or_else(|| format!("{at}: {name} is not declared"))?;
        check(field, declared, schemas, &format!("{at}.{name}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn a_published_document_matches_the_schema_openapi_json_declares() {
    let env = TestEnv::new().await;
    seed(&env.db.pool, 1, 40).await;
    let Outcome::Published(meta) = refresh(&env.ctx).await.unwrap() else {
        panic!("expected a published snapshot");
    };
    let (_, bodies) = env.ctx.store.load_current().await.unwrap().unwrap();
    let document = zstd::decode_all(&bodies.zstd[..]).unwrap();
    meta.verify_document(&document).unwrap();
    let document: Value = serde_json::from_slice(&document).unwrap();

    let openapi: Value = serde_json::from_str(&std::fs::read_to_string(OPENAPI).unwrap()).unwrap();
    let schemas = openapi["components"]["schemas"].as_object().unwrap();
    let body = &openapi["paths"]["/api/v4/ofertasws"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    check(&document, body, schemas, "document").unwrap();

    // The seed has every nullable field both set and null, so both sides were checked.
    let offers = document["ofertas"].as_array().unwrap();
    for field in ["description", "original_price", "image_url", "ends_at"] {
        assert!(offers.iter().any(|o| o[field].is_null()), "{field} null");
        assert!(offers.iter().any(|o| !o[field].is_null()), "{field} set");
    }

    // And the check refuses what the schema does not declare.
    let mut extra = document.clone();
    extra["ofertas"][0]["rank"] = Value::from(1);
    assert!(check(&extra, body, schemas, "document").is_err());
    let mut wrong = document;
    wrong["ofertas"][0]["price"] = Value::from(12.5);
    assert!(check(&wrong, body, schemas, "document").is_err());
}
