//! Outbound profiles: follows `GetProfile(ip:port)` for one target, failing static.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use tokio::sync::watch;
use tonic::transport::Channel;
use trellis_api::{
    destination::Profile,
    linkerd2_proxy_api::destination::{GetDestination, destination_client::DestinationClient},
};

use crate::retry::{self, Next};

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
    client: DestinationClient<Channel>,
    target: SocketAddr,
    context_token: String,
    tx: watch::Sender<ProfileState>,
) {
    let req = GetDestination {
        scheme: String::new(),
        path: target.to_string(),
        context_token,
    };
    let open = retry::reopen(client, req, |mut client, req| async move {
        client.get_profile(req).await
    });
    let on_update = |profile: Result<Profile, Infallible>, _| {
        let Ok(profile) = profile;
        tracing::debug!(%target, fqn = %profile.fully_qualified_name, opaque = profile.opaque_protocol, "Profile updated");
        retry::send_if_changed(&tx, ProfileState::Known(profile));
    };
    let on_end = |status: &tonic::Status| {
        if retry::is_rejection(status) {
            tracing::debug!(%target, %status, "Profile lookup rejected; going on with no profile");
            tx.send_replace(ProfileState::Rejected);
            return Next::RetryAfter(REJECTED_TTL);
        }
        retry::mark_unavailable(&tx, &ProfileState::Pending, ProfileState::Unavailable);
        Next::Retry
    };
    retry::follow("profile", open, on_update, on_end).await;
}
