//! Server rules: no two Servers in a namespace may select a common pod on the same port.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::ResourceExt;
use trellis_crds::v1alpha1::server::ServerSpec;

use super::{Validate, Verdict};
use crate::{error::Error, lookup::PolicyLookup};

impl Validate for ServerSpec {
    const KIND: &'static str = "Server";

    /// Refuses a Server whose selector can match a pod that another Server in `namespace`
    /// selects on the same port; the message names both Servers.
    async fn validate(
        &self,
        lookup: &dyn PolicyLookup,
        namespace: &str,
        name: &str,
    ) -> Result<Verdict, Error> {
        validate(lookup, namespace, name, self).await
    }
}

async fn validate(
    lookup: &dyn PolicyLookup,
    namespace: &str,
    name: &str,
    spec: &ServerSpec,
) -> Result<Verdict, Error> {
    let others = lookup
        .servers(namespace)
        .await
        .map_err(|source| Error::Lookup {
            what: format!("Servers in namespace {namespace}"),
            source,
        })?;
    let mut clashes: Vec<String> = others
        .iter()
        .filter(|other| other.name_any() != name)
        .filter(|other| other.spec.port == spec.port && overlaps(&other.spec, spec))
        .map(|other| other.name_any())
        .collect();
    clashes.sort();
    if clashes.is_empty() {
        return Ok(Verdict::allow());
    }
    Ok(Verdict::deny(format!(
        "Server {name} overlaps Server {} on port {}: their selectors can match the same pods, \
         and a pod port may belong to one Server only; make the selectors disjoint or use a \
         different port",
        clashes.join(", Server "),
        spec.port
    )))
}

/// Whether two Servers can select a common pod (or a common external workload).
fn overlaps(a: &ServerSpec, b: &ServerSpec) -> bool {
    match (
        (&a.pod_selector, &b.pod_selector),
        (&a.external_workload_selector, &b.external_workload_selector),
    ) {
        ((Some(a), Some(b)), _) | (_, (Some(a), Some(b))) => selectors_overlap(a, b),
        _ => false,
    }
}

/// What one label key must satisfy across the requirements of both selectors.
#[derive(Default)]
struct KeyConstraint {
    /// Allowed values (intersection of every `In` and equality), when any was given.
    allowed: Option<BTreeSet<String>>,
    /// Values ruled out by `NotIn`.
    excluded: BTreeSet<String>,
    /// The key must be present.
    exists: bool,
    /// The key must be absent.
    absent: bool,
}

impl KeyConstraint {
    fn restrict(&mut self, values: impl IntoIterator<Item = String>) {
        let values: BTreeSet<String> = values.into_iter().collect();
        self.allowed = Some(match self.allowed.take() {
            Some(allowed) => allowed.intersection(&values).cloned().collect(),
            None => values,
        });
    }

    fn satisfiable(&self) -> bool {
        let must_exist = self.exists || self.allowed.is_some();
        if self.absent && must_exist {
            return false;
        }
        match &self.allowed {
            Some(allowed) => allowed.iter().any(|v| !self.excluded.contains(v)),
            None => true,
        }
    }
}

/// Whether some label set satisfies both selectors. Requirements on different keys are
/// independent, so this holds exactly when every key's combined constraint can be met.
/// A requirement with an unknown operator is treated as satisfiable.
pub fn selectors_overlap(a: &LabelSelector, b: &LabelSelector) -> bool {
    let mut keys: BTreeMap<&str, KeyConstraint> = BTreeMap::new();
    for selector in [a, b] {
        for (key, value) in selector.match_labels.iter().flatten() {
            keys.entry(key).or_default().restrict([value.clone()]);
        }
        for LabelSelectorRequirement {
            key,
            operator,
            values,
        } in selector.match_expressions.iter().flatten()
        {
            let constraint = keys.entry(key).or_default();
            let values = values.clone().unwrap_or_default();
            match operator.as_str() {
                "In" => constraint.restrict(values),
                "NotIn" => constraint.excluded.extend(values),
                "Exists" => constraint.exists = true,
                "DoesNotExist" => constraint.absent = true,
                _ => {}
            }
        }
    }
    keys.values().all(KeyConstraint::satisfiable)
}
