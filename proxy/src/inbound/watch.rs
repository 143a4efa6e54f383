//! Inbound policy discovery: one `WatchPort` stream per port, failing static.
//!
//! Each port starts on the configured default policy. A watch replaces it with what the
//! controller sends, keeps the last value when the stream fails, and resubscribes with
//! backoff; `InvalidArgument` and `FailedPrecondition` end the watch for good. A new
//! connection waits briefly for its port's first answer ([`Policies::first`]), so a port the
//! proxy was not told about up front is not served on the default policy while its watch is
//! still starting.

use std::{collections::HashMap, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::transport::Channel;
use tracing::Instrument;
use trellis_api::linkerd2_proxy_api::inbound::{
    PortSpec, inbound_server_policies_client::InboundServerPoliciesClient,
};

use super::{policy::ServerPolicy, routes::CompiledPolicy};
use crate::{
    drain::Drain,
    retry::{self, Next},
    tls,
};

/// How long a connection waits for its port's first policy before the default applies.
pub const FIRST_POLICY_WAIT: Duration = Duration::from_secs(1);

/// Where inbound connections get their port's policy.
#[derive(Debug)]
pub struct Policies {
    default: Arc<ServerPolicy>,
    /// Per port: the last policy whose routes were compiled, with them.
    compiled: Mutex<HashMap<u16, Arc<CompiledPolicy>>>,
    /// Per port: the controller's latest policy, `None` until it first answers.
    ports: Mutex<HashMap<u16, watch::Receiver<Option<Arc<ServerPolicy>>>>>,
    controller: Option<Controller>,
}

#[derive(Debug)]
struct Controller {
    client: InboundServerPoliciesClient<Channel>,
    workload: String,
    /// Waited on before the first call (mTLS needs this proxy's certificate).
    creds: Option<Arc<tls::Store>>,
    drain: Drain,
}

impl Policies {
    /// Every port on `default`, with no controller.
    pub fn fixed(default: ServerPolicy) -> Self {
        Self {
            default: Arc::new(default),
            compiled: Mutex::default(),
            ports: Mutex::default(),
            controller: None,
        }
    }

    /// Ports start on `default` and follow `WatchPort` on `client`. When `creds` is set,
    /// watches start once the proxy holds a certificate. Watches end when `drain` starts.
    pub fn watched(
        default: ServerPolicy,
        client: InboundServerPoliciesClient<Channel>,
        workload: String,
        creds: Option<Arc<tls::Store>>,
        drain: Drain,
    ) -> Self {
        Self {
            default: Arc::new(default),
            compiled: Mutex::default(),
            ports: Mutex::default(),
            controller: Some(Controller {
                client,
                workload,
                creds,
                drain,
            }),
        }
    }

    /// The current policy of `port`; the first call for a port starts its watch.
    pub fn get(&self, port: u16) -> Arc<ServerPolicy> {
        match self.receiver(port) {
            Some(rx) => rx.borrow().clone().unwrap_or_else(|| self.default.clone()),
            None => self.default.clone(),
        }
    }

    /// The policy of `port` once the controller has answered for it, or the default once
    /// the port's watch is [`FIRST_POLICY_WAIT`] old (the controller is slow or away).
    pub async fn first(&self, port: u16) -> Arc<ServerPolicy> {
        let Some(mut rx) = self.receiver(port) else {
            return self.default.clone();
        };
        match tokio::time::timeout(FIRST_POLICY_WAIT, rx.wait_for(Option::is_some)).await {
            Ok(Ok(policy)) => policy.clone().unwrap_or_else(|| self.default.clone()),
            _ => {
                tracing::debug!(port, "No policy from the controller yet; using the default");
                self.get(port)
            }
        }
    }

    /// `policy` (the current one of `port`) with its routes compiled, once per policy.
    pub fn compiled(&self, port: u16, policy: Arc<ServerPolicy>) -> Arc<CompiledPolicy> {
        let mut compiled = self.compiled.lock();
        match compiled.get(&port) {
            Some(c) if Arc::ptr_eq(&c.policy, &policy) => c.clone(),
            _ => {
                let c = Arc::new(CompiledPolicy::new(policy));
                compiled.insert(port, c.clone());
                c
            }
        }
    }

    /// Follows `port`'s policy as the controller changes it (`None` without a controller):
    /// the current policy now, and each later one.
    pub fn updates(&self, port: u16) -> Option<PolicyUpdates> {
        let mut rx = self.receiver(port)?;
        rx.borrow_and_update();
        Some(PolicyUpdates {
            rx,
            default: self.default.clone(),
        })
    }

    /// The watch of `port`, started on first use; `None` without a controller.
    fn receiver(&self, port: u16) -> Option<watch::Receiver<Option<Arc<ServerPolicy>>>> {
        let controller = self.controller.as_ref()?;
        let mut ports = self.ports.lock();
        if let Some(rx) = ports.get(&port) {
            return Some(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        let tx = Arc::new(tx);
        ports.insert(port, rx.clone());
        // Only connections in the port's first moments wait: after that, the default stands
        // until the controller answers (fail static when it is away).
        let default = self.default.clone();
        let timer = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FIRST_POLICY_WAIT).await;
            timer.send_if_modified(|policy| policy.is_none() && policy.replace(default).is_none());
        });
        let spec = PortSpec {
            workload: controller.workload.clone(),
            port: u32::from(port),
        };
        let task = retry::once_certified(
            controller.creds.clone(),
            watch_port(controller.client.clone(), spec, tx),
        );
        let drain = controller.drain.clone();
        tokio::spawn(
            async move {
                tokio::select! {
                    () = task => {}
                    () = drain.signaled() => {}
                }
            }
            .instrument(tracing::debug_span!("inbound_policy", port)),
        );
        Some(rx)
    }
}

/// A port's later policies.
#[derive(Debug)]
pub struct PolicyUpdates {
    rx: watch::Receiver<Option<Arc<ServerPolicy>>>,
    default: Arc<ServerPolicy>,
}

impl PolicyUpdates {
    /// The next policy of the port; never resolves once the watch has ended.
    pub async fn next(&mut self) -> Arc<ServerPolicy> {
        if self.rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        self.rx
            .borrow_and_update()
            .clone()
            .unwrap_or_else(|| self.default.clone())
    }
}

/// Follows `WatchPort` for `spec` into `tx`, resubscribing with backoff; a policy the
/// proxy cannot use denies everything, and a rejected lookup keeps the current policy.
async fn watch_port(
    client: InboundServerPoliciesClient<Channel>,
    spec: PortSpec,
    tx: Arc<watch::Sender<Option<Arc<ServerPolicy>>>>,
) {
    let port = spec.port;
    let open = retry::reopen(client, spec, |mut client, spec| async move {
        client.watch_port(spec).await
    });
    let on_update = |policy: Result<ServerPolicy, _>, _| {
        let policy = policy.unwrap_or_else(|error| {
            tracing::warn!(port, %error, "Controller sent an invalid policy; denying");
            super::policy::invalid()
        });
        tracing::debug!(port, server = policy.meta.name(), "Inbound policy updated");
        tx.send_replace(Some(Arc::new(policy)));
    };
    let on_end = |status: &tonic::Status| {
        if retry::is_rejection(status) {
            tracing::warn!(port, %status, "Policy watch rejected; keeping the current policy");
            return Next::Stop;
        }
        Next::Retry
    };
    retry::follow("inbound policy", open, on_update, on_end).await;
}
