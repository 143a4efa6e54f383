use std::collections::BTreeMap;

use serde_json::json;

use super::{Desired, apply_body, desired_label};

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[test]
fn known_values_are_mirrored() {
    for value in ["enabled", "ingress", "disabled"] {
        assert_eq!(
            desired_label(&annotations(&[("trellis.dev/inject", value)])),
            Desired::Label(value),
        );
    }
}

#[test]
fn no_annotation_means_no_label() {
    assert_eq!(desired_label(&BTreeMap::new()), Desired::Absent);
    assert_eq!(
        desired_label(&annotations(&[("example.com/other", "enabled")])),
        Desired::Absent,
    );
    assert_eq!(Desired::Absent.value(), None);
}

#[test]
fn unknown_values_are_not_labelled() {
    let desired = desired_label(&annotations(&[("trellis.dev/inject", "Enabled")]));
    assert_eq!(desired, Desired::Unknown("Enabled".to_string()));
    assert_eq!(desired.value(), None);
}

#[test]
fn apply_body_owns_only_the_inject_label() {
    assert_eq!(
        apply_body("apps", Some("enabled")),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": "apps", "labels": { "trellis.dev/inject": "enabled" } },
        }),
    );
    assert_eq!(apply_body("apps", None)["metadata"]["labels"], json!({}),);
}
