//! `completion/complete`: small fixed suggestion lists, filtered by prefix.
//!
//! The conformance suite only checks that `completion.values` is an array;
//! real suggestions make the endpoint useful in demos and tests.

use serde_json::{Value, json};

use crate::protocol::RpcError;

pub(crate) fn complete(params: &Value) -> Result<Value, RpcError> {
    let reference = params
        .get("ref")
        .ok_or_else(|| RpcError::invalid_params("missing `ref`"))?;
    let argument = params
        .get("argument")
        .ok_or_else(|| RpcError::invalid_params("missing `argument`"))?;
    let (Some(name), Some(value)) = (
        argument.get("name").and_then(Value::as_str),
        argument.get("value").and_then(Value::as_str),
    ) else {
        return Err(RpcError::invalid_params(
            "`argument` needs string `name` and `value`",
        ));
    };
    let candidates: &[&str] = match (
        reference.get("type").and_then(Value::as_str),
        reference
            .get("name")
            .or_else(|| reference.get("uri"))
            .and_then(Value::as_str),
        name,
    ) {
        (Some("ref/prompt"), Some("greet"), "name") => &["Alice", "Bob", "Carol", "Dave", "Eve"],
        (Some("ref/prompt"), Some("test_prompt_with_arguments"), "arg1" | "arg2") => {
            &["paris", "park", "party"]
        }
        (Some("ref/resource"), Some("test://template/{id}/data"), "id") => {
            &["1", "2", "3", "42", "123"]
        }
        (Some("ref/prompt" | "ref/resource"), Some(_), _) => &[],
        _ => {
            return Err(RpcError::invalid_params(
                "`ref` must be a ref/prompt with `name` or a ref/resource with `uri`",
            ));
        }
    };
    let prefix = value.to_lowercase();
    let values: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|candidate| candidate.to_lowercase().starts_with(&prefix))
        .collect();
    Ok(json!({ "completion": { "values": values, "total": values.len(), "hasMore": false } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_prefix() {
        let result = complete(&json!({
            "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
            "argument": { "name": "arg1", "value": "par" },
        }))
        .unwrap();
        assert_eq!(
            result["completion"]["values"],
            json!(["paris", "park", "party"])
        );
        let none = complete(&json!({
            "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
            "argument": { "name": "arg1", "value": "test" },
        }))
        .unwrap();
        assert_eq!(none["completion"]["values"], json!([]));
    }
}
