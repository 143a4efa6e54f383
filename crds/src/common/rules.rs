//! CEL validation rules that several kinds share.

use kube::core::Rule;

/// Exactly one of the optional fields `a` and `b` (their JSON names) must be set.
pub(crate) fn exactly_one_of(a: &str, b: &str) -> Rule {
    Rule::new(format!("has(self.{a}) != has(self.{b})"))
        .message(format!("set exactly one of {a} and {b}").as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_names_both_fields() {
        let rule = serde_json::to_value(exactly_one_of("podSelector", "workloadSelector")).unwrap();
        assert_eq!(
            rule,
            serde_json::json!({
                "rule": "has(self.podSelector) != has(self.workloadSelector)",
                "message": "set exactly one of podSelector and workloadSelector",
            })
        );
    }
}
