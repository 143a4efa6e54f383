//! Outbound policy discovery: follows `OutboundPolicies.Watch` for one target, failing static.

use std::net::SocketAddr;

use tokio::sync::watch;
use tonic::{Code, transport::Channel};
use trellis_api::{
    linkerd2_proxy_api::{
        net::TcpAddress,
        outbound::{TrafficSpec, outbound_policies_client::OutboundPoliciesClient, traffic_spec},
    },
    outbound::OutboundPolicy,
};

use crate::retry::{self, Next};

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
    client: OutboundPoliciesClient<Channel>,
    target: SocketAddr,
    workload: String,
    tx: watch::Sender<PolicyState>,
) {
    let spec = TrafficSpec {
        source_workload: workload,
        target: Some(traffic_spec::Target::Addr(TcpAddress::from(target))),
    };
    let open = retry::reopen(client, spec, |mut client, spec| async move {
        client.watch(spec).await
    });
    let on_update = |policy: Result<OutboundPolicy, _>, _| {
        let next = match policy {
            Ok(policy) => {
                tracing::debug!(%target, backend = %policy.backend_path, protocol = ?policy.protocol, "Outbound policy updated");
                PolicyState::Known(policy)
            }
            Err(error) => {
                tracing::warn!(%target, %error, "Controller sent an unusable outbound policy; using the profile");
                PolicyState::Invalid
            }
        };
        retry::send_if_changed(&tx, next);
    };
    let on_end = |status: &tonic::Status| match status.code() {
        Code::NotFound | Code::Unimplemented => {
            tracing::debug!(%target, %status, "No outbound policy; using the profile");
            tx.send_replace(PolicyState::NotFound);
            Next::Stop
        }
        Code::InvalidArgument | Code::FailedPrecondition => {
            tracing::warn!(%target, %status, "Outbound policy lookup rejected; connections to the target fail");
            tx.send_replace(PolicyState::Rejected);
            Next::Stop
        }
        _ => {
            retry::mark_unavailable(&tx, &PolicyState::Pending, PolicyState::Unavailable);
            Next::Retry
        }
    };
    retry::follow("outbound policy", open, on_update, on_end).await;
}
