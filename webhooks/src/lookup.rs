//! Reads of other objects the webhooks need (namespaces, Servers, pods), behind traits so
//! that router tests can use fakes; [`KubeLookup`] answers them from the apiserver.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::{
    api::core::v1::{Namespace, Pod},
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{Api, Client, api::ListParams, core::Selector};
use trellis_crds::v1alpha1::server::Server;

use crate::error::LookupError;

/// What a lookup returns: a boxed future of `T` or the reason the read failed.
pub type LookupFuture<'a, T> = BoxFuture<'a, Result<T, LookupError>>;

/// Reads a namespace's annotations (for `trellis.dev/inject` and `config.trellis.dev/*`).
pub trait NamespaceLookup: Send + Sync + 'static {
    /// The annotations of namespace `name`, or `None` when it does not exist.
    fn namespace_annotations<'a>(
        &'a self,
        name: &'a str,
    ) -> LookupFuture<'a, Option<BTreeMap<String, String>>>;
}

/// Reads the policy objects that cross-object validation compares against.
pub trait PolicyLookup: Send + Sync + 'static {
    /// Every Server in `namespace`.
    fn servers<'a>(&'a self, namespace: &'a str) -> LookupFuture<'a, Vec<Server>>;
    /// Whether Server `name` exists in `namespace`.
    fn server_exists<'a>(&'a self, namespace: &'a str, name: &'a str) -> LookupFuture<'a, bool>;
    /// The pods in `namespace` that `selector` selects (to resolve named Server ports).
    fn pods<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a LabelSelector,
    ) -> LookupFuture<'a, Vec<Pod>>;
}

/// Answers lookups with direct reads from the apiserver.
#[derive(Clone)]
pub struct KubeLookup {
    client: Client,
}

impl std::fmt::Debug for KubeLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLookup").finish_non_exhaustive()
    }
}

impl KubeLookup {
    /// Lookups through `client` (it needs get on namespaces, list and get on Servers, list
    /// on pods).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl NamespaceLookup for KubeLookup {
    fn namespace_annotations<'a>(
        &'a self,
        name: &'a str,
    ) -> LookupFuture<'a, Option<BTreeMap<String, String>>> {
        Box::pin(async move {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let ns = api.get_opt(name).await?;
            Ok(ns.map(|ns| ns.metadata.annotations.unwrap_or_default()))
        })
    }
}

impl PolicyLookup for KubeLookup {
    fn servers<'a>(&'a self, namespace: &'a str) -> LookupFuture<'a, Vec<Server>> {
        Box::pin(async move {
            let api: Api<Server> = Api::namespaced(self.client.clone(), namespace);
            Ok(api.list(&ListParams::default()).await?.items)
        })
    }

    fn server_exists<'a>(&'a self, namespace: &'a str, name: &'a str) -> LookupFuture<'a, bool> {
        Box::pin(async move {
            let api: Api<Server> = Api::namespaced(self.client.clone(), namespace);
            Ok(api.get_opt(name).await?.is_some())
        })
    }

    fn pods<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a LabelSelector,
    ) -> LookupFuture<'a, Vec<Pod>> {
        Box::pin(async move {
            let selector = Selector::try_from(selector.clone())?;
            let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let params = ListParams::default().labels_from(&selector);
            Ok(api.list(&params).await?.items)
        })
    }
}
