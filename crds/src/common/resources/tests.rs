use schemars::SchemaGenerator;
use serde_json::json;

use super::*;

#[test]
fn quantity_fields_are_bounded_and_checked() {
    let schema = SchemaGenerator::default().into_root_schema_for::<ResourceAmounts>();
    let cpu = &schema.as_value()["properties"]["cpu"];
    assert_eq!(cpu["maxLength"], json!(32), "{cpu}");
    assert_eq!(
        cpu["x-kubernetes-validations"],
        json!([{
            "rule": QUANTITY_RULE,
            "message": "must be a non-negative quantity of CPU such as 100m, 0.5 or 2",
        }]),
        "{cpu}"
    );
    let memory = &schema.as_value()["properties"]["memory"];
    assert_eq!(
        memory["x-kubernetes-validations"][0]["message"],
        json!("must be a non-negative quantity of memory such as 64Mi or 1Gi"),
        "{memory}"
    );
}

#[test]
fn requests_are_checked_against_limits_per_resource() {
    let rule = serde_json::to_value(request_within_limit("memory")).unwrap();
    assert_eq!(rule["fieldPath"], json!(".requests.memory"), "{rule}");
    assert_eq!(
        rule["message"],
        json!(
            "requests.memory must not exceed limits.memory: lower the request or raise the limit"
        ),
        "{rule}"
    );
    let cel = rule["rule"].as_str().unwrap();
    assert!(
        cel.ends_with(
            "quantity(string(self.requests.memory)).compareTo(quantity(string(self.limits.memory))) <= 0"
        ),
        "{cel}"
    );
}
