use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

use super::*;

/// Calls `visit(path, schema)` on every schema node of every version of `crd`.
fn walk(crd: &CustomResourceDefinition, visit: &mut dyn FnMut(&str, &JSONSchemaProps)) {
    fn go(path: &str, schema: &JSONSchemaProps, visit: &mut dyn FnMut(&str, &JSONSchemaProps)) {
        visit(path, schema);
        for (name, child) in schema.properties.iter().flatten() {
            go(&format!("{path}.{name}"), child, visit);
        }
        match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(item)) => go(&format!("{path}[]"), item, visit),
            Some(JSONSchemaPropsOrArray::Schemas(items)) => items
                .iter()
                .for_each(|item| go(&format!("{path}[]"), item, visit)),
            None => {}
        }
        if let Some(JSONSchemaPropsOrBool::Schema(values)) = &schema.additional_properties {
            go(&format!("{path}{{}}"), values, visit);
        }
    }
    for version in &crd.spec.versions {
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap_or_else(|| panic!("{} has no schema", crd.spec.names.kind));
        go(&crd.spec.names.kind, schema, visit);
    }
}

#[test]
fn every_kind_is_generated_with_its_group_and_scope() {
    let found: BTreeSet<_> = all()
        .iter()
        .map(|crd| {
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, VERSION);
            assert!(version.served && version.storage);
            (
                crd.spec.names.kind.clone(),
                crd.spec.group.clone(),
                crd.spec.scope.clone(),
            )
        })
        .collect();
    let expected: BTreeSet<_> = [
        ("Mesh", GROUP, "Cluster"),
        ("ServiceProfile", GROUP, "Namespaced"),
        ("Server", POLICY_GROUP, "Namespaced"),
        ("AuthorizationPolicy", POLICY_GROUP, "Namespaced"),
        ("MeshTLSAuthentication", POLICY_GROUP, "Namespaced"),
        ("NetworkAuthentication", POLICY_GROUP, "Namespaced"),
    ]
    .into_iter()
    .map(|(k, g, s)| (k.to_string(), g.to_string(), s.to_string()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn every_kind_has_status_category_short_name_and_owner_label() {
    for crd in all() {
        let kind = &crd.spec.names.kind;
        let version = &crd.spec.versions[0];
        let subresources = version.subresources.as_ref();
        assert!(
            subresources.and_then(|s| s.status.as_ref()).is_some(),
            "{kind}: no status subresource"
        );
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["trellis".to_string()]),
            "{kind}"
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|n| n.len() == 1),
            "{kind}"
        );
        let labels = crd.metadata.labels.as_ref().expect("labels");
        assert_eq!(
            labels.get(PART_OF_LABEL.0).map(String::as_str),
            Some(PART_OF_LABEL.1),
            "{kind}"
        );
        let columns = version
            .additional_printer_columns
            .as_ref()
            .expect("printer columns");
        assert_eq!(
            columns.last().map(|c| c.name.as_str()),
            Some("Age"),
            "{kind}: Age comes last"
        );
        if kind != "Mesh" {
            assert!(
                columns.iter().any(|c| c.name == "Accepted"
                    && c.json_path == ".status.conditions[?(@.type==\"Accepted\")].status"),
                "{kind}: no Accepted column"
            );
        }
    }
}

#[test]
fn mesh_printer_columns() {
    let mesh = all()
        .into_iter()
        .find(|c| c.spec.names.kind == "Mesh")
        .expect("Mesh CRD");
    let columns = mesh.spec.versions[0]
        .additional_printer_columns
        .clone()
        .expect("columns");
    let shown: Vec<_> = columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.priority.unwrap_or(0),
                c.json_path.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                "Ready",
                0,
                ".status.conditions[?(@.type==\"Ready\")].status"
            ),
            ("Version", 0, ".status.version"),
            ("Components", 0, ".status.componentsReady"),
            ("Meshed", 0, ".status.meshedPods"),
            (
                "Status",
                1,
                ".status.conditions[?(@.type==\"Ready\")].reason"
            ),
            ("Desired", 1, ".spec.version"),
            ("Anchor-Expiry", 1, ".status.identity.trustAnchorNotAfter"),
            ("Up-To-Date", 1, ".status.upToDatePods"),
            ("Age", 0, ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    for crd in all() {
        walk(&crd, &mut |path, schema| {
            // kubectl explain describes a list or map by its field; items need no text of their own.
            if path.ends_with("[]") || path.ends_with("{}") {
                return;
            }
            let description = schema.description.as_deref().unwrap_or_default();
            assert!(!description.trim().is_empty(), "{path} has no description");
            assert!(
                !description.contains('\n') || description.contains("\n\n"),
                "{path}: wrapped lines were not joined: {description:?}"
            );
        });
    }
}

#[test]
fn every_cel_rule_has_a_message() {
    let mut rules = 0;
    for crd in all() {
        walk(&crd, &mut |path, schema| {
            for rule in schema.x_kubernetes_validations.iter().flatten() {
                rules += 1;
                let message = rule.message.as_deref().unwrap_or_default();
                assert!(
                    !message.is_empty(),
                    "{path}: rule {:?} has no message",
                    rule.rule
                );
                assert!(
                    !message.ends_with('.'),
                    "{path}: {message:?} ends with a period"
                );
            }
        });
    }
    assert!(rules > 30, "only {rules} CEL rules found");
}

#[test]
fn strings_checked_by_cel_are_bounded() {
    // The apiserver rejects a CRD whose CEL rules could cost too much; unbounded strings and
    // lists under a rule are the usual cause.
    for crd in all() {
        walk(&crd, &mut |path, schema| {
            if schema.x_kubernetes_validations.is_none() {
                return;
            }
            let is_string = schema.type_.as_deref() == Some("string")
                || schema.x_kubernetes_int_or_string == Some(true);
            if is_string {
                assert!(
                    schema.max_length.is_some(),
                    "{path}: string under a CEL rule needs maxLength"
                );
            }
            if schema.type_.as_deref() == Some("array") {
                assert!(
                    schema.max_items.is_some(),
                    "{path}: list under a CEL rule needs maxItems"
                );
            }
        });
    }
}

#[test]
fn schemas_use_no_references_or_unions() {
    for crd in all() {
        walk(&crd, &mut |path, schema| {
            assert!(schema.ref_path.is_none(), "{path} uses $ref");
            assert!(
                schema.one_of.is_none() && schema.any_of.is_none(),
                "{path} uses a union"
            );
        });
    }
}

#[test]
fn conditions_are_a_map_list_keyed_by_type() {
    for crd in all() {
        walk(&crd, &mut |path, schema| {
            if path.ends_with(".status.conditions") {
                assert_eq!(
                    schema.x_kubernetes_list_type.as_deref(),
                    Some("map"),
                    "{path}"
                );
                assert_eq!(
                    schema.x_kubernetes_list_map_keys,
                    Some(vec!["type".to_string()]),
                    "{path}"
                );
            }
        });
    }
}

#[test]
fn wrapped_lines_are_joined_and_paragraphs_kept() {
    assert_eq!(
        describe::join_wrapped_lines("one\ntwo\n\nthree\n  four"),
        "one two\n\nthree four"
    );
}
