//! Server rules: no two Servers in a namespace may select a common pod on the same port.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
};
use kube::{
    ResourceExt,
    core::{Selector, SelectorExt},
};
use trellis_crds::{
    common::port::Port,
    v1alpha1::server::{Server, ServerSpec},
};

use super::{Validate, Verdict};
use crate::{error::Error, lookup::PolicyLookup};

impl Validate for ServerSpec {
    const KIND: &'static str = "Server";

    /// Refuses a Server whose selector can match a pod that another Server in `namespace`
    /// selects on the same port; the message names both Servers. When one port is a name
    /// (or both are different names), they are the same port only on a pod whose container
    /// port makes them so, so the pods both select are looked up and checked.
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
    let mut overlapping: Vec<&Server> = others
        .iter()
        .filter(|other| other.name_any() != name && overlaps(&other.spec, spec))
        .collect();
    overlapping.sort_by_key(|other| other.name_any());
    let clashes: Vec<String> = overlapping
        .iter()
        .filter(|other| other.spec.port == spec.port)
        .map(|other| other.name_any())
        .collect();
    if !clashes.is_empty() {
        return Ok(Verdict::deny(format!(
            "Server {name} overlaps Server {} on port {}: their selectors can match the same \
             pods, and a pod port may belong to one Server only; make the selectors disjoint or \
             use a different port",
            clashes.join(", Server "),
            spec.port
        )));
    }
    let named: Vec<&Server> = overlapping
        .into_iter()
        .filter(|other| may_resolve_alike(&spec.port, &other.spec.port))
        .collect();
    if named.is_empty() {
        return Ok(Verdict::allow());
    }
    let Some(selector) = &spec.pod_selector else {
        return Ok(Verdict::allow());
    };
    let pods = lookup
        .pods(namespace, selector)
        .await
        .map_err(|source| Error::Lookup {
            what: format!("pods in namespace {namespace}"),
            source,
        })?;
    let clashes: Vec<String> = named
        .iter()
        .filter_map(|other| same_port_on_a_pod(spec, other, &pods))
        .map(|clash| {
            format!(
                "Server {name} (port {}) overlaps Server {} (port {}): both are port {} of pod \
                 {}",
                spec.port, clash.other, clash.other_port, clash.number, clash.pod
            )
        })
        .collect();
    if clashes.is_empty() {
        return Ok(Verdict::allow());
    }
    Ok(Verdict::deny(format!(
        "{}; a pod port may belong to one Server only: make the selectors disjoint or use a \
         different port",
        clashes.join("; ")
    )))
}

/// Whether two literally different ports can still be one port: when either is a name.
fn may_resolve_alike(a: &Port, b: &Port) -> bool {
    a != b && (matches!(a, Port::Name(_)) || matches!(b, Port::Name(_)))
}

/// A pod on which two Servers' ports are the same container port.
struct Clash {
    other: String,
    other_port: String,
    number: i32,
    pod: String,
}

/// The first of `pods` (those `spec` selects) that `other` also selects and on which both
/// ports resolve to the same number.
fn same_port_on_a_pod(spec: &ServerSpec, other: &Server, pods: &[Pod]) -> Option<Clash> {
    let selector = Selector::try_from(other.spec.pod_selector.clone()?).ok()?;
    pods.iter()
        .filter(|pod| selector.matches(pod.labels()))
        .find_map(|pod| {
            let number = resolve(&spec.port, pod)?;
            (resolve(&other.spec.port, pod)? == number).then(|| Clash {
                other: other.name_any(),
                other_port: other.spec.port.to_string(),
                number,
                pod: pod.name_any(),
            })
        })
}

/// The number `port` stands for on `pod`: itself, or the container port with that name.
fn resolve(port: &Port, pod: &Pod) -> Option<i32> {
    match port {
        Port::Number(number) => Some(*number),
        Port::Name(name) => pod
            .spec
            .iter()
            .flat_map(|spec| {
                spec.containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
            })
            .flat_map(|container| container.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
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
