//! Applies a rendered [`Plan`] for one Mesh: lists what the Mesh owns, applies the plan with
//! server-side apply in stages, prunes what it no longer renders, and deletes everything on
//! cleanup. Objects a person marked `trellis.dev/ignore: "true"` are left alone.

use std::collections::BTreeSet;

use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
    apps::v1::Deployment,
    core::v1::{ConfigMap, Secret, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    core::PartialObjectMeta,
};
use trellis_api::well_known::{FIELD_MANAGER, MANAGED_BY_LABEL};

use crate::reconciler::{
    error::Error,
    render::{IGNORE_ANNOTATION, MESH_LABEL, Plan, Rendered},
};

#[cfg(test)]
mod tests;

/// Every kind the Mesh renders, in deletion order (webhooks first, namespace last and
/// separately), with whether it is namespaced. Pruning and cleanup select them by the
/// `trellis.dev/mesh` label.
pub fn managed_kinds() -> Vec<(ApiResource, bool)> {
    vec![
        (
            ApiResource::erase::<MutatingWebhookConfiguration>(&()),
            false,
        ),
        (
            ApiResource::erase::<ValidatingWebhookConfiguration>(&()),
            false,
        ),
        (ApiResource::erase::<Deployment>(&()), true),
        (ApiResource::erase::<PodDisruptionBudget>(&()), true),
        (ApiResource::erase::<Service>(&()), true),
        (ApiResource::erase::<ConfigMap>(&()), true),
        (ApiResource::erase::<Secret>(&()), true),
        (ApiResource::erase::<RoleBinding>(&()), true),
        (ApiResource::erase::<Role>(&()), true),
        (ApiResource::erase::<ClusterRoleBinding>(&()), false),
        (ApiResource::erase::<ClusterRole>(&()), false),
        (ApiResource::erase::<ServiceAccount>(&()), true),
    ]
}

/// The label selector of the objects Mesh `mesh` manages.
pub fn mesh_selector(mesh: &str) -> String {
    format!(
        "{}={},{MESH_LABEL}={mesh}",
        MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1
    )
}

/// The apply stage of an object: the namespace first, then everything else concurrently,
/// webhook configurations last (so they never point at a server that is not there yet).
fn stage(object: &Rendered) -> usize {
    match object.resource.kind.as_str() {
        "Namespace" => 0,
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => 2,
        _ => 1,
    }
}

/// Number of apply stages, see [`stage`].
const STAGES: usize = 3;

/// `(kind, name)` of an object, the key of pruning and ignoring.
type Key = (String, String);

/// What a Mesh owns in the cluster now, by kind, and which of it is ignored.
#[derive(Debug, Default)]
pub struct Existing {
    /// Each managed kind with whether it is namespaced and its objects' metadata.
    pub kinds: Vec<(ApiResource, bool, Vec<PartialObjectMeta<DynamicObject>>)>,
    /// Objects that carry `trellis.dev/ignore: "true"`.
    pub ignored: BTreeSet<Key>,
}

impl Existing {
    fn is_ignored(&self, kind: &str, name: &str) -> bool {
        self.ignored.contains(&(kind.to_string(), name.to_string()))
    }
}

/// Applies and prunes the objects of one Mesh in its namespace.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    namespace: String,
    mesh: String,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("namespace", &self.namespace)
            .field("mesh", &self.mesh)
            .finish_non_exhaustive()
    }
}

impl Applier {
    /// An applier for Mesh `mesh`, whose namespaced objects live in `namespace`.
    pub fn new(client: Client, namespace: &str, mesh: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            mesh: mesh.to_string(),
        }
    }

    fn api(&self, resource: &ApiResource, namespaced: bool) -> Api<DynamicObject> {
        if namespaced {
            Api::namespaced_with(self.client.clone(), &self.namespace, resource)
        } else {
            Api::all_with(self.client.clone(), resource)
        }
    }

    async fn list(&self, resource: &ApiResource, namespaced: bool) -> Result<Existing, Error> {
        let list = self
            .api(resource, namespaced)
            .list_metadata(&ListParams::default().labels(&mesh_selector(&self.mesh)))
            .await
            .map_err(Error::kube(format!(
                "list {} of Mesh {}",
                resource.plural, self.mesh
            )))?;
        let ignored = list
            .items
            .iter()
            .filter(|item| {
                item.annotations()
                    .get(IGNORE_ANNOTATION)
                    .is_some_and(|v| v == "true")
            })
            .map(|item| (resource.kind.clone(), item.name_any()))
            .collect();
        Ok(Existing {
            kinds: vec![(resource.clone(), namespaced, list.items)],
            ignored,
        })
    }

    /// Lists every managed kind concurrently.
    pub async fn existing(&self) -> Result<Existing, Error> {
        let lists = futures::future::try_join_all(
            managed_kinds()
                .iter()
                .map(|(resource, namespaced)| self.list(resource, *namespaced)),
        )
        .await?;
        Ok(lists
            .into_iter()
            .fold(Existing::default(), |mut all, mut one| {
                all.kinds.append(&mut one.kinds);
                all.ignored.append(&mut one.ignored);
                all
            }))
    }

    /// Applies `plan` in stages (see [`stage`]) with the field manager `trellis-operator`,
    /// skipping ignored objects; stops at the first stage that fails and returns its first
    /// error.
    pub async fn apply(&self, plan: &Plan, existing: &Existing) -> Result<(), Error> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for current in 0..STAGES {
            let batch = plan
                .objects
                .iter()
                .filter(|o| stage(o) == current)
                .filter(|o| {
                    let ignored = existing.is_ignored(&o.resource.kind, o.name());
                    if ignored {
                        tracing::debug!(object = %o.describe(), "Left alone: it carries {IGNORE_ANNOTATION}");
                    }
                    !ignored
                })
                .map(|o| self.apply_one(o, &params));
            let results = futures::future::join_all(batch).await;
            if let Some(error) = results.into_iter().find_map(Result::err) {
                return Err(error);
            }
        }
        Ok(())
    }

    async fn apply_one(&self, object: &Rendered, params: &PatchParams) -> Result<(), Error> {
        self.api(&object.resource, object.namespaced)
            .patch(object.name(), params, &Patch::Apply(&object.object))
            .await
            .map(|_| ())
            .map_err(Error::kube(format!("apply {}", object.describe())))
    }

    /// Deletes what exists but `plan` no longer renders (ignored objects stay); returns
    /// `Kind name` of each object deleted.
    pub async fn prune(&self, plan: &Plan, existing: Existing) -> Result<Vec<String>, Error> {
        let wanted: BTreeSet<Key> = plan
            .objects
            .iter()
            .map(|o| (o.resource.kind.clone(), o.name().to_string()))
            .collect();
        let mut pruned = Vec::new();
        for (resource, namespaced, items) in existing.kinds {
            for item in items {
                let key = (resource.kind.clone(), item.name_any());
                if wanted.contains(&key) || existing.ignored.contains(&key) {
                    continue;
                }
                if self.delete(&resource, namespaced, &key.1, "prune").await? {
                    pruned.push(format!("{} {}", key.0, key.1));
                }
            }
        }
        Ok(pruned)
    }

    /// Deletes every object the Mesh manages, kind by kind in [`managed_kinds`] order
    /// (webhook configurations first); returns how many were deleted.
    pub async fn delete_all(&self) -> Result<usize, Error> {
        let mut removed = 0;
        for (resource, namespaced) in managed_kinds() {
            let Existing { kinds, .. } = self.list(&resource, namespaced).await?;
            for item in kinds.into_iter().flat_map(|(_, _, items)| items) {
                if self
                    .delete(&resource, namespaced, &item.name_any(), "delete")
                    .await?
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Deletes one object in the background; `false` when it was already gone.
    async fn delete(
        &self,
        resource: &ApiResource,
        namespaced: bool,
        name: &str,
        verb: &str,
    ) -> Result<bool, Error> {
        match self
            .api(resource, namespaced)
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(Error::kube(format!("{verb} {} {name}", resource.kind))(e)),
        }
    }
}
