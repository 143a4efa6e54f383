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
