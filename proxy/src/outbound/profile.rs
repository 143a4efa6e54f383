//! Outbound profiles: follows `GetProfile(ip:port)` for one target, failing static.

use std::{convert::Infallible, net::SocketAddr, ops::RangeInclusive, time::Duration};

use tokio::sync::watch;
use tonic::transport::Channel;
use trellis_api::{
    destination::{self, Profile, ResponseMatch},
    linkerd2_proxy_api::destination::{GetDestination, destination_client::DestinationClient},
    route::{self, PathMatch, RequestMatch, Retry, RouteKind, RouteRef, Rule, Timeouts},
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

/// Retries of a ServiceProfile route marked `isRetryable` (the budget bounds them further).
pub const PROFILE_RETRY_LIMIT: u32 = 3;
/// Largest request body a profile retry buffers.
pub const PROFILE_RETRY_MAX_BYTES: u32 = 64 * 1024;

/// The routes a ServiceProfile calls for, when it has routes or a traffic split (profiles
/// win over the policy's routes, as in Linkerd): each profile route with its timeout and
/// retries, then a catch-all, all sent to the `dstOverrides` split (or to `service_path`).
/// Routes whose conditions cannot be expressed (`not`) are left out, with a warning.
pub fn routes(profile: &Profile, service_path: &str) -> Option<Vec<route::Route>> {
    if profile.routes.is_empty() && profile.dst_overrides.is_empty() {
        return None;
    }
    let backends: Vec<route::RouteBackend> = if profile.dst_overrides.is_empty() {
        vec![backend(service_path, 1)]
    } else {
        profile
            .dst_overrides
            .iter()
            .map(|d| backend(&d.authority, d.weight))
            .collect()
    };
    let mut out = Vec::new();
    for r in &profile.routes {
        let Some(matches) = request_matches(&r.condition) else {
            tracing::warn!(route = %r.name, "Profile route condition is not supported (`not`); leaving the route out");
            continue;
        };
        let retry = r.is_retryable.then(|| Retry {
            limit: PROFILE_RETRY_LIMIT,
            max_request_bytes: PROFILE_RETRY_MAX_BYTES,
            statuses: failure_statuses(&r.response_classes),
            codes: Vec::new(),
            timeout: None,
            backoff: None,
        });
        out.push(route::Route {
            meta: RouteRef::Resource {
                group: "trellis.dev".into(),
                kind: "ServiceProfile".into(),
                namespace: String::new(),
                name: r.name.clone(),
                port: 0,
            },
            kind: RouteKind::Http,
            hosts: Vec::new(),
            rules: vec![Rule {
                matches,
                backends: backends.clone(),
                timeouts: Timeouts {
                    request: r.timeout,
                    ..Timeouts::default()
                },
                retry,
                ..Rule::default()
            }],
        });
    }
    out.push(route::Route {
        meta: RouteRef::Default("default".into()),
        kind: RouteKind::Http,
        hosts: Vec::new(),
        rules: vec![Rule {
            backends,
            ..Rule::default()
        }],
    });
    Some(out)
}

fn backend(path: &str, weight: u32) -> route::RouteBackend {
    route::RouteBackend {
        backend: route::Backend {
            meta: RouteRef::Default(path.to_string()),
            path: path.to_string(),
        },
        weight,
        filters: Vec::new(),
    }
}

/// A profile condition as Gateway-style matches (any of them): paths and methods, joined
/// by `all` into one match and by `any` into several; `None` for what cannot be expressed.
fn request_matches(m: &destination::RequestMatch) -> Option<Vec<RequestMatch>> {
    use destination::RequestMatch as P;
    match m {
        P::Path(regex) => Some(vec![RequestMatch {
            path: Some(PathMatch::Regex(regex.clone())),
            ..RequestMatch::default()
        }]),
        P::Method(method) => Some(vec![RequestMatch {
            method: Some(method.clone()),
            ..RequestMatch::default()
        }]),
        P::Any(parts) => parts
            .iter()
            .map(request_matches)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat()),
        P::All(parts) => {
            let mut joined = RequestMatch::default();
            for part in parts {
                let mut one = request_matches(part)?;
                if one.len() != 1 {
                    return None;
                }
                let one = one.remove(0);
                if one.path.is_some() {
                    if joined.path.is_some() {
                        return None;
                    }
                    joined.path = one.path;
                }
                if one.method.is_some() {
                    if joined.method.is_some() {
                        return None;
                    }
                    joined.method = one.method;
                }
            }
            Some(vec![joined])
        }
        P::Not(_) => None,
    }
}

fn response_matches(m: &ResponseMatch, status: u16) -> bool {
    match m {
        ResponseMatch::All(parts) => parts.iter().all(|p| response_matches(p, status)),
        ResponseMatch::Any(parts) => parts.iter().any(|p| response_matches(p, status)),
        ResponseMatch::Not(p) => !response_matches(p, status),
        ResponseMatch::Status { min, max } => (*min..=*max).contains(&status),
    }
}

/// The statuses the response classes call failures (the first matching class decides;
/// unmatched 5xx are failures), as ranges.
fn failure_statuses(classes: &[destination::ResponseClass]) -> Vec<RangeInclusive<u16>> {
    let is_failure = |s: u16| {
        classes
            .iter()
            .find(|c| response_matches(&c.condition, s))
            .map_or(s >= 500, |c| c.is_failure)
    };
    let mut ranges: Vec<RangeInclusive<u16>> = Vec::new();
    for s in (100..=599).filter(|s| is_failure(*s)) {
        match ranges.last_mut() {
            Some(r) if *r.end() + 1 == s => *r = *r.start()..=s,
            _ => ranges.push(s..=s),
        }
    }
    ranges
}

#[cfg(test)]
mod tests;
