//! Watches of one named object, as the control plane and the issuer follow them.

use futures::{Stream, StreamExt};
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use tokio_util::sync::CancellationToken;

use crate::watch_backoff::WatchBackoff;

/// Every applied version of the object `name`, retried with backoff on watch errors.
pub fn named<K>(
    api: Api<K>,
    name: &str,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, config)
        .backoff(WatchBackoff::default())
        .applied_objects()
}

/// [`named`], ending when `shutdown` is cancelled.
pub fn named_until<K>(
    api: Api<K>,
    name: &str,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    named(api, name).take_until(shutdown.cancelled_owned())
}
