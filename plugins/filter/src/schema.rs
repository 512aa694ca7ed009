//! The part of JSON Schema that tool `inputSchema`s use in practice:
//! `type` (one or a list), `required`, `properties`,
//! `additionalProperties: false`, `enum`, `const`, `items`, `minimum`,
//! `maximum`, `minLength`, `maxLength`. Anything else is not checked (a
//! schema this does not understand lets the call through rather than refuse
//! a valid one).
//!
//! Written here rather than taken from a validator crate: those compile
//! regex engines and format checkers into every filter component, for
//! keywords tool schemas rarely use.

use switchyard_sdk::Value;

/// `Ok` if `value` fits `schema`, else where and why not.
pub fn check(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    if let Some(t) = s.get("type") {
        let allowed: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| is_type(value, t)) {
            return Err(format!("`{at}` must be {}", allowed.join(" or ")));
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!(
            "`{at}` must be one of {}",
            Value::Array(options.clone())
        ));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        return Err(format!("`{at}` must be {c}"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("`{at}` must be at least {min}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("`{at}` must be at most {max}"));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            return Err(format!("`{at}` is too short"));
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            return Err(format!("`{at}` is too long"));
        }
    }
    if let Some(obj) = value.as_object() {
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = name.as_str()
                && !obj.contains_key(name)
            {
                return Err(format!("`{at}.{name}` is required"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, v, &format!("{at}.{k}"))?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("`{at}.{k}` is not a parameter of this tool"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (s.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            check(items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::serde_json::json;

    #[test]
    fn the_common_keywords_are_checked() {
        let schema = json!({"type": "object", "required": ["a"], "additionalProperties": false,
            "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"enum": ["x", "y"]},
                           "c": {"type": "array", "items": {"type": "string", "maxLength": 3}}}});
        assert!(
            check(
                &schema,
                &json!({"a": 1, "b": "x", "c": ["abc"]}),
                "arguments"
            )
            .is_ok()
        );
        for (bad, why) in [
            (json!({}), "`arguments.a` is required"),
            (json!({"a": "1"}), "`arguments.a` must be integer"),
            (json!({"a": -1}), "at least"),
            (json!({"a": 1, "b": "z"}), "one of"),
            (
                json!({"a": 1, "c": ["abcd"]}),
                "`arguments.c[0]` is too long",
            ),
            (json!({"a": 1, "d": 1}), "not a parameter"),
            (json!([1]), "must be object"),
        ] {
            let err = check(&schema, &bad, "arguments").unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keywords_let_values_through() {
        assert!(
            check(
                &json!({"format": "email", "pattern": "^x"}),
                &json!("y"),
                "a"
            )
            .is_ok()
        );
        assert!(check(&json!(true), &json!(1), "a").is_ok());
    }
}
