//! Outbound profiles: follows `GetProfile(ip:port)` for one target, failing static.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::sync::watch;
use tonic::{Code, transport::Channel};
use trellis_api::{
    destination::Profile,
    linkerd2_proxy_api::destination::{GetDestination, destination_client::DestinationClient},
};

use crate::{retry::Backoff, tls};

/// How long a rejected lookup (`InvalidArgument`, `FailedPrecondition`) stands before it is
/// asked again, so a target that opted out can opt back in.
pub const REJECTED_TTL: Duration = Duration::from_secs(30);

/// The profile of a target as known so far.
#[derive(Clone, Debug, PartialEq)]
pub enum ProfileState {
    /// No answer yet.
    Pending,
    /// The controller was unreachable before its first answer (still retrying).
    Unavailable,
    /// The controller rejected the lookup: no profile.
    Rejected,
    /// The latest profile.
    Known(Profile),
}

/// Follows `GetProfile` for `target` into `tx`, forever: resubscribes with backoff keeping
/// the last profile, and asks again [`REJECTED_TTL`] after a rejection.
pub async fn watch(
    mut client: DestinationClient<Channel>,
    target: SocketAddr,
    context_token: String,
    creds: Option<Arc<tls::Store>>,
    tx: watch::Sender<ProfileState>,
) {
    if let Some(creds) = creds {
        creds.certified().await;
    }
    let mut backoff = Backoff::default();
    loop {
        let req = GetDestination {
            scheme: String::new(),
            path: target.to_string(),
            context_token: context_token.clone(),
        };
        let status = match client.get_profile(req).await {
            Err(status) => status,
            Ok(rsp) => {
                let mut stream = rsp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(profile)) => {
                            backoff.reset();
                            let profile = Profile::from(profile);
                            tracing::debug!(%target, fqn = %profile.fully_qualified_name, opaque = profile.opaque_protocol, "Profile updated");
                            tx.send_if_modified(|state| {
                                let next = ProfileState::Known(profile);
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
        if matches!(
            status.code(),
            Code::InvalidArgument | Code::FailedPrecondition
        ) {
            tracing::debug!(%target, %status, "Profile lookup rejected; going on with no profile");
            tx.send_replace(ProfileState::Rejected);
            tokio::time::sleep(REJECTED_TTL).await;
            continue;
        }
        tx.send_if_modified(|state| {
            let first = *state == ProfileState::Pending;
            if first {
                *state = ProfileState::Unavailable;
            }
            first
        });
        tracing::debug!(%target, %status, "Profile watch ended; resubscribing");
        backoff.wait().await;
    }
}
