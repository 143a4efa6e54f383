//! The JSON Patch (RFC 6902) that adds the injected containers, volumes, labels and
//! annotations to a pod, leaving everything else as the apiserver sent it.

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation, jsonptr::PointerBuf};
use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use serde::Serialize;

use crate::error::Error;

/// What injection adds to a pod.
#[derive(Clone, Debug, Default)]
pub struct Additions {
    /// Init containers to run before the pod's own, in this order.
    pub init_containers: Vec<Container>,
    /// Containers to put before the pod's own, in this order.
    pub containers: Vec<Container>,
    /// Volumes to add.
    pub volumes: Vec<Volume>,
    /// Labels to set.
    pub labels: BTreeMap<String, String>,
    /// Annotations to set.
    pub annotations: BTreeMap<String, String>,
}

/// The patch that applies `additions` to `pod`.
pub fn patch(pod: &Pod, additions: &Additions) -> Result<Patch, Error> {
    let mut ops = Vec::new();
    let spec = pod.spec.as_ref();
    let has_init = spec.is_some_and(|s| s.init_containers.is_some());
    prepend(
        &mut ops,
        &["spec", "initContainers"],
        has_init,
        &additions.init_containers,
    )?;
    prepend(
        &mut ops,
        &["spec", "containers"],
        true,
        &additions.containers,
    )?;
    let has_volumes = spec.is_some_and(|s| s.volumes.is_some());
    if !additions.volumes.is_empty() {
        if has_volumes {
            for volume in &additions.volumes {
                ops.push(add(&["spec", "volumes", "-"], volume)?);
            }
        } else {
            ops.push(add(&["spec", "volumes"], &additions.volumes)?);
        }
    }
    let meta = &pod.metadata;
    set_map(&mut ops, "labels", meta.labels.is_some(), &additions.labels)?;
    set_map(
        &mut ops,
        "annotations",
        meta.annotations.is_some(),
        &additions.annotations,
    )?;
    Ok(Patch(ops))
}

/// Inserts `items` at the front of the list at `path`, in order, creating the list if absent.
fn prepend(
    ops: &mut Vec<PatchOperation>,
    path: &[&str],
    exists: bool,
    items: &[Container],
) -> Result<(), Error> {
    if items.is_empty() {
        return Ok(());
    }
    if !exists {
        ops.push(add(path, items)?);
        return Ok(());
    }
    for (index, item) in items.iter().enumerate() {
        let index = index.to_string();
        let mut tokens = path.to_vec();
        tokens.push(&index);
        ops.push(add(&tokens, item)?);
    }
    Ok(())
}

fn set_map(
    ops: &mut Vec<PatchOperation>,
    field: &str,
    exists: bool,
    entries: &BTreeMap<String, String>,
) -> Result<(), Error> {
    if entries.is_empty() {
        return Ok(());
    }
    if !exists {
        ops.push(add(&["metadata", field], entries)?);
        return Ok(());
    }
    for (key, value) in entries {
        ops.push(add(&["metadata", field, key], value)?);
    }
    Ok(())
}

fn add<T: Serialize + ?Sized>(path: &[&str], value: &T) -> Result<PatchOperation, Error> {
    Ok(PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(path.iter().copied()),
        value: serde_json::to_value(value).map_err(Error::Serialize)?,
    }))
}
