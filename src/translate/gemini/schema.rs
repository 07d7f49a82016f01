//! JSON Schema → the OpenAPI subset Gemini's `Schema` accepts, for function parameters and
//! `responseSchema`.
//!
//! Gemini answers 400 to schema keywords outside its subset (`additionalProperties`, `$schema`,
//! `$ref`, `$defs`, `oneOf`, `const`, `exclusiveMinimum`, unknown `format`s, …). So every
//! schema object keeps only the keywords Gemini documents, after rewriting the common ones it
//! can express differently:
//!
//! - `"type": ["string", "null"]` → `"type": "string", "nullable": true` (the first non-null
//!   type wins when several are given);
//! - `const: v` → `enum: [v]`; `oneOf` → `anyOf`;
//! - `enum` with non-string values is dropped (Gemini enums are strings);
//! - `format` is kept only where Gemini supports it (`enum`, `date-time`, `int32`, `int64`,
//!   `float`, `double`);
//! - `required` keeps only names that `properties` defines;
//! - an object with no properties loses `properties` (Gemini rejects it empty), and a function
//!   whose parameters are an empty object gets no `parameters` at all.
//!
//! `$ref` is not resolved: the referring property keeps its description but loses its shape.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::translate::TranslateError;

/// The keywords of Gemini's `Schema` object.
const KEYWORDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

const FORMATS: &[&str] = &["enum", "date-time", "int32", "int64", "float", "double"];

/// A function's parameters for Gemini (`field` names them in the request, for the error):
/// `None` when the schema describes an object without properties. A schema that cannot be read
/// is refused rather than left out: the function would reach the model without its parameters.
pub(crate) fn parameters(schema: &RawValue, field: &str) -> Result<Option<Value>, TranslateError> {
    let mut value = read(schema, field)?;
    clean(&mut value);
    let is_empty_object = value.as_object().is_some_and(|schema| {
        schema.get("type").and_then(Value::as_str) == Some("object")
            && !schema.contains_key("properties")
            && !schema.contains_key("anyOf")
    });
    Ok((!is_empty_object).then_some(value))
}

/// A `responseSchema` for Gemini, or the reason `field` cannot be read.
pub(crate) fn response_schema(schema: &RawValue, field: &str) -> Result<Value, TranslateError> {
    let mut value = read(schema, field)?;
    clean(&mut value);
    Ok(value)
}

/// The schema as a tree. The request was parsed without building one, so this is where a
/// schema nested deeper than the parser allows (128 levels) is found.
fn read(schema: &RawValue, field: &str) -> Result<Value, TranslateError> {
    serde_json::from_str(schema.get()).map_err(|error| {
        TranslateError::InvalidRequest(format!(
            "{field} could not be read for this model's provider (Gemini): {error}. Send a \
             schema nested less deeply."
        ))
    })
}

fn clean(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    rewrite_type(map);
    if let Some(value) = map.remove("const")
        && !map.contains_key("enum")
    {
        map.insert("enum".to_owned(), Value::Array(vec![value]));
    }
    if let Some(one_of) = map.remove("oneOf")
        && !map.contains_key("anyOf")
    {
        map.insert("anyOf".to_owned(), one_of);
    }
    map.retain(|key, _| KEYWORDS.contains(&key.as_str()));
    if map
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|format| !FORMATS.contains(&format))
    {
        map.remove("format");
    }
    if map
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|values| !values.iter().all(Value::is_string))
    {
        map.remove("enum");
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(clean);
    }
    let defined: Option<Vec<String>> = match map.get("properties") {
        Some(Value::Object(properties)) if !properties.is_empty() => {
            Some(properties.keys().cloned().collect())
        }
        _ => None,
    };
    match defined {
        Some(defined) => {
            if let Some(Value::Array(required)) = map.get_mut("required") {
                required.retain(|name| {
                    name.as_str()
                        .is_some_and(|name| defined.iter().any(|d| d == name))
                });
            }
        }
        None => {
            map.remove("properties");
            map.remove("required");
        }
    }
    if let Some(items) = map.get_mut("items") {
        // A tuple (`items` as an array) is described by its first member.
        if let Value::Array(tuple) = items {
            let first = tuple.first().cloned().unwrap_or(Value::Object(Map::new()));
            *items = first;
        }
        clean(items);
    }
    if let Some(Value::Array(choices)) = map.get_mut("anyOf") {
        choices.iter_mut().for_each(clean);
    }
}

/// `type` as one string, with `nullable` for a `"null"` member of a type list.
fn rewrite_type(map: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = map.get("type") else {
        return;
    };
    let nullable = types.iter().any(|t| t.as_str() == Some("null"));
    let first = types
        .iter()
        .find(|t| t.as_str().is_some_and(|t| t != "null"))
        .cloned();
    match first {
        Some(first) => {
            map.insert("type".to_owned(), first);
        }
        None => {
            map.remove("type");
        }
    }
    if nullable {
        map.insert("nullable".to_owned(), Value::Bool(true));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(value: &Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(value).unwrap()
    }

    #[test]
    fn keywords_gemini_rejects_are_removed_or_rewritten() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "type": {"type": ["string", "null"], "format": "uri", "description": "a property named type"},
                "mode": {"const": "fast"},
                "level": {"type": "integer", "enum": [1, 2], "exclusiveMinimum": 0},
                "when": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string", "additionalProperties": true}, "uniqueItems": true},
                "pair": {"type": "array", "items": [{"type": "number"}, {"type": "string"}]},
                "either": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {}, "$ref": "#/x"}]}
            },
            "required": ["type", "ghost"],
            "$defs": {"x": {}}
        });
        let cleaned = parameters(&raw(&schema), "p").unwrap().unwrap();
        assert_eq!(
            cleaned,
            json!({
                "type": "object",
                "properties": {
                    "type": {"type": "string", "nullable": true, "description": "a property named type"},
                    "mode": {"enum": ["fast"]},
                    "level": {"type": "integer"},
                    "when": {"type": "string", "format": "date-time"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "pair": {"type": "array", "items": {"type": "number"}},
                    "either": {"anyOf": [{"type": "string"}, {"type": "object"}]}
                },
                "required": ["type"]
            })
        );
    }

    #[test]
    fn parameters_of_an_empty_object_are_left_out() {
        let empty = json!({"type": "object", "properties": {}, "additionalProperties": false});
        assert_eq!(parameters(&raw(&empty), "p").unwrap(), None);
        assert_eq!(
            parameters(&raw(&json!({"type": "object"})), "p").unwrap(),
            None
        );
        assert_eq!(
            response_schema(&raw(&json!({"type": "object", "properties": {}})), "r").unwrap(),
            json!({"type": "object"})
        );
    }

    /// A schema `depth` objects deep: `{"type":"object","properties":{"a":{…}}}`.
    fn nested_schema(depth: usize) -> String {
        let mut schema = r#"{"type":"string"}"#.to_owned();
        for _ in 0..depth {
            schema = format!(r#"{{"type":"object","properties":{{"a":{schema}}}}}"#);
        }
        schema
    }

    #[test]
    fn schemas_deeper_than_the_parser_reads_are_refused_not_dropped() {
        let deep = nested_schema(100);
        let tools = format!(
            r#"{{"messages":[{{"role":"user","content":"hi"}}],
                "tools":[{{"type":"function","function":{{"name":"f","parameters":{deep}}}}}]}}"#
        );
        let error = crate::translate::gemini::chat_request_to_gemini(
            tools.as_bytes(),
            crate::pricing::ModelLimits::UNKNOWN,
        )
        .expect_err("a schema that cannot be read is refused");
        assert!(error.is_client_error(), "{error}");
        assert!(
            error.to_string().contains("tools[0].function.parameters"),
            "{error}"
        );
        let format = format!(
            r#"{{"messages":[{{"role":"user","content":"hi"}}],
                "response_format":{{"type":"json_schema","json_schema":{{"name":"x","schema":{deep}}}}}}}"#
        );
        let error = crate::translate::gemini::chat_request_to_gemini(
            format.as_bytes(),
            crate::pricing::ModelLimits::UNKNOWN,
        )
        .expect_err("a response schema that cannot be read is refused");
        assert!(error.is_client_error(), "{error}");
        assert!(
            error
                .to_string()
                .contains("response_format.json_schema.schema"),
            "{error}"
        );
        // Within the limit, it is translated.
        let shallow = nested_schema(20);
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":"hi"}}],
                "tools":[{{"type":"function","function":{{"name":"f","parameters":{shallow}}}}}]}}"#
        );
        assert!(
            crate::translate::gemini::chat_request_to_gemini(
                body.as_bytes(),
                crate::pricing::ModelLimits::UNKNOWN
            )
            .is_ok()
        );
    }
}
