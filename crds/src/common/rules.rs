//! CEL validation rules that several kinds share.

use kube::core::Rule;

/// Exactly one of the optional fields `a` and `b` (their JSON names) must be set.
pub(crate) fn exactly_one_of(a: &str, b: &str) -> Rule {
    Rule::new(format!("has(self.{a}) != has(self.{b})"))
        .message(format!("set exactly one of {a} and {b}").as_str())
}

/// The optional `group` must be the group of `kind`: `kind_group` is a CEL expression of the
/// kind's own group, and `groups` says which group each kind has, for the message.
pub(crate) fn group_matches_kind(kind_group: &str, groups: &str) -> Rule {
    Rule::new(format!("!has(self.group) || self.group == ({kind_group})"))
        .message(
            format!("group must match kind: {groups}; omit group to use the kind's own").as_str(),
        )
        .field_path(".group")
}

/// The two rules that the optional `field` is set exactly when `switch` is `value`: required
/// then (`how` tells what to put in it), and refused otherwise.
pub(crate) fn set_only_when(field: &str, switch: &str, value: &str, how: &str) -> [Rule; 2] {
    [
        Rule::new(format!("self.{switch} != '{value}' || has(self.{field})"))
            .message(format!("{field} is required when {switch} is {value}: {how}").as_str())
            .field_path(format!(".{field}")),
        Rule::new(format!("self.{switch} == '{value}' || !has(self.{field})"))
            .message(
                format!(
                    "{field} is only for {switch} {value}: remove it, or set {switch} to {value}"
                )
                .as_str(),
            )
            .field_path(format!(".{field}")),
    ]
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

    #[test]
    fn group_matches_kind_checks_group_only_when_set() {
        let rule = serde_json::to_value(group_matches_kind(
            "self.kind == 'Server' ? 'policy.trellis.dev' : ''",
            "policy.trellis.dev for Server",
        ))
        .unwrap();
        assert_eq!(
            rule,
            serde_json::json!({
                "rule": "!has(self.group) || self.group == \
                         (self.kind == 'Server' ? 'policy.trellis.dev' : '')",
                "message": "group must match kind: policy.trellis.dev for Server; omit group to use \
                            the kind's own",
                "fieldPath": ".group",
            })
        );
    }

    #[test]
    fn set_only_when_requires_and_refuses_the_field() {
        let rules =
            serde_json::to_value(set_only_when("url", "mode", "External", "give a URL")).unwrap();
        assert_eq!(
            rules,
            serde_json::json!([
                {
                    "rule": "self.mode != 'External' || has(self.url)",
                    "message": "url is required when mode is External: give a URL",
                    "fieldPath": ".url",
                },
                {
                    "rule": "self.mode == 'External' || !has(self.url)",
                    "message": "url is only for mode External: remove it, or set mode to External",
                    "fieldPath": ".url",
                },
            ])
        );
    }
}
