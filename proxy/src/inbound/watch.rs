//! Inbound policy discovery: one `WatchPort` stream per port, failing static.
//!
//! Each port starts on the configured default policy. A watch replaces it with what the
//! controller sends, keeps the last value when the stream fails, and resubscribes with
//! backoff; `InvalidArgument` and `FailedPrecondition` end the watch for good.

use std::{collections::HashMap, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::{Code, transport::Channel};
use trellis_api::linkerd2_proxy_api::inbound::{
    PortSpec, inbound_server_policies_client::InboundServerPoliciesClient,
};

use super::policy::ServerPolicy;
use crate::{drain::Drain, tls};

/// First retry delay after a failed watch.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Where inbound connections get their port's policy.
#[derive(Debug)]
pub struct Policies {
    default: Arc<ServerPolicy>,
    ports: Mutex<HashMap<u16, watch::Receiver<Arc<ServerPolicy>>>>,
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
        let Some(controller) = &self.controller else {
            return self.default.clone();
        };
        let mut ports = self.ports.lock();
        if let Some(rx) = ports.get(&port) {
            return rx.borrow().clone();
        }
        let (tx, rx) = watch::channel(self.default.clone());
        ports.insert(port, rx);
        let task = watch_port(
            controller.client.clone(),
            PortSpec {
                workload: controller.workload.clone(),
                port: u32::from(port),
            },
            controller.creds.clone(),
            tx,
        );
        let drain = controller.drain.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = task => {}
                () = drain.signaled() => {}
            }
        });
        self.default.clone()
    }
}

async fn watch_port(
    mut client: InboundServerPoliciesClient<Channel>,
    spec: PortSpec,
    creds: Option<Arc<tls::Store>>,
    tx: watch::Sender<Arc<ServerPolicy>>,
) {
    if let Some(creds) = creds {
        creds.certified().await;
    }
    let port = spec.port;
    let mut backoff = BACKOFF_MIN;
    loop {
        let status = match client.watch_port(spec.clone()).await {
            Err(status) => status,
            Ok(rsp) => {
                let mut stream = rsp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(server)) => {
                            backoff = BACKOFF_MIN;
                            let policy = ServerPolicy::try_from(server).unwrap_or_else(|error| {
                                tracing::warn!(port, %error, "Controller sent an invalid policy; denying");
                                super::policy::invalid()
                            });
                            tracing::debug!(
                                port,
                                server = policy.meta.name(),
                                "Inbound policy updated"
                            );
                            tx.send_replace(Arc::new(policy));
                        }
                        Ok(None) => break tonic::Status::ok("stream ended"),
                        Err(status) => break status,
                    }
                }
            }
        };
        if matches!(
            status.code(),
            Code::InvalidArgument | Code::FailedPrecondition
        ) {
            tracing::warn!(port, %status, "Policy watch rejected; keeping the current policy");
            return;
        }
        tracing::debug!(port, %status, ?backoff, "Policy watch ended; resubscribing");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
