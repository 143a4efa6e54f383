//! Outbound policy discovery: follows `OutboundPolicies.Watch` for one target, failing static.

use std::{net::SocketAddr, sync::Arc};

use tokio::sync::watch;
use tonic::{Code, transport::Channel};
use trellis_api::{
    linkerd2_proxy_api::{
        net::TcpAddress,
        outbound::{TrafficSpec, outbound_policies_client::OutboundPoliciesClient, traffic_spec},
    },
    outbound::OutboundPolicy,
};

use crate::{retry::Backoff, tls};

/// The policy of a target as known so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyState {
    /// No answer yet.
    Pending,
    /// The controller was unreachable before its first answer (still retrying).
    Unavailable,
    /// `NotFound` or `Unimplemented`: the target has no policy (not a Service).
    NotFound,
    /// The controller sent a policy this proxy cannot use; discovery goes on without it.
    Invalid,
    /// `InvalidArgument` or `FailedPrecondition`: connections to the target fail.
    Rejected,
    /// The latest policy.
    Known(OutboundPolicy),
}

impl PolicyState {
    /// Whether the controller has said the target has no usable policy.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::NotFound | Self::Invalid)
    }
}

/// Follows `OutboundPolicies.Watch` for `target` into `tx`: resubscribes with backoff keeping
/// the last policy; a permanent answer (`NotFound`, `Unimplemented`, `InvalidArgument`,
/// `FailedPrecondition`) ends the watch.
pub async fn watch(
    mut client: OutboundPoliciesClient<Channel>,
    target: SocketAddr,
    workload: String,
    creds: Option<Arc<tls::Store>>,
    tx: watch::Sender<PolicyState>,
) {
    if let Some(creds) = creds {
        creds.certified().await;
    }
    let spec = TrafficSpec {
        source_workload: workload,
        target: Some(traffic_spec::Target::Addr(TcpAddress::from(target))),
    };
    let mut backoff = Backoff::default();
    loop {
        let status = match client.watch(spec.clone()).await {
            Err(status) => status,
            Ok(rsp) => {
                let mut stream = rsp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(policy)) => {
                            backoff.reset();
                            let next = match OutboundPolicy::try_from(policy) {
                                Ok(policy) => {
                                    tracing::debug!(%target, backend = %policy.backend_path, protocol = ?policy.protocol, "Outbound policy updated");
                                    PolicyState::Known(policy)
                                }
                                Err(error) => {
                                    tracing::warn!(%target, %error, "Controller sent an unusable outbound policy; using the profile");
                                    PolicyState::Invalid
                                }
                            };
                            tx.send_if_modified(|state| {
                                let changed = *state != next;
                                *state = next;
                                changed
                            });
                        }
                        Ok(None) => break tonic::Status::ok("stream ended"),
                        Err(status) => break status,
                    }
                }
            }
        };
        match status.code() {
            Code::NotFound | Code::Unimplemented => {
                tracing::debug!(%target, %status, "No outbound policy; using the profile");
                tx.send_replace(PolicyState::NotFound);
                return;
            }
            Code::InvalidArgument | Code::FailedPrecondition => {
                tracing::warn!(%target, %status, "Outbound policy lookup rejected; connections to the target fail");
                tx.send_replace(PolicyState::Rejected);
                return;
            }
            _ => {}
        }
        tx.send_if_modified(|state| {
            let first = *state == PolicyState::Pending;
            if first {
                *state = PolicyState::Unavailable;
            }
            first
        });
        tracing::debug!(%target, %status, "Outbound policy watch ended; resubscribing");
        backoff.wait().await;
    }
}
