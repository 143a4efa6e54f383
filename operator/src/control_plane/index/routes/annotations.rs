//! Linkerd's retry, timeout and failure-accrual annotations, read from routes and Services.
//!
//! Every key is read under its Linkerd prefix (`retry.linkerd.io/limit`) and under Trellis's
//! (`retry.trellis.dev/limit`); the Trellis spelling wins when both are set. Route annotations
//! override the parent Service's, key by key.

use std::{collections::BTreeMap, ops::RangeInclusive, time::Duration};

use trellis_api::route::{Backoff, FailureAccrual, GrpcCode, Retry, RouteKind, Timeouts};
use trellis_crds::common::duration::parse_go;

use super::error::RouteError;

/// Largest request body a retry buffers; larger requests are not retried.
pub const RETRY_MAX_REQUEST_BYTES: u32 = 64 * 1024;
/// Retries per request when a retry annotation is set without `limit`.
pub const DEFAULT_RETRY_LIMIT: u32 = 1;

const RETRY: [&str; 2] = ["retry.trellis.dev/", "retry.linkerd.io/"];
const TIMEOUT: [&str; 2] = ["timeout.trellis.dev/", "timeout.linkerd.io/"];
const BALANCER: [&str; 2] = ["balancer.trellis.dev/", "balancer.linkerd.io/"];

/// Whether `key` is one of the annotations this module reads (the index keeps only those).
pub fn is_route_annotation(key: &str) -> bool {
    RETRY
        .iter()
        .chain(&TIMEOUT)
        .chain(&BALANCER)
        .any(|p| key.starts_with(p))
}

/// The annotations of a route over its Service's: route keys win.
#[derive(Debug)]
pub struct Annotations<'a> {
    route: &'a BTreeMap<String, String>,
    service: Option<&'a BTreeMap<String, String>>,
}

/// One annotation value with the key it was read from (for error messages).
struct Found<'a> {
    key: String,
    value: &'a str,
}

impl<'a> Annotations<'a> {
    /// Route annotations over (optional) Service annotations.
    pub fn new(
        route: &'a BTreeMap<String, String>,
        service: Option<&'a BTreeMap<String, String>>,
    ) -> Self {
        Self { route, service }
    }

    fn get(&self, prefixes: [&str; 2], name: &str) -> Option<Found<'a>> {
        let lookup = |map: &'a BTreeMap<String, String>| {
            prefixes.iter().find_map(|p| {
                let key = format!("{p}{name}");
                map.get(&key).map(|v| Found {
                    key: format!("metadata.annotations[{key}]"),
                    value: v.as_str(),
                })
            })
        };
        lookup(self.route).or_else(|| self.service.and_then(lookup))
    }

    fn duration(&self, prefixes: [&str; 2], name: &str) -> Result<Option<Duration>, RouteError> {
        let Some(found) = self.get(prefixes, name) else {
            return Ok(None);
        };
        parse_go(found.value.trim())
            .map(Some)
            .map_err(|source| RouteError::Duration {
                field: found.key,
                source,
            })
    }

    /// Timeouts from `timeout.*/request`, `response` and `idle`.
    pub fn timeouts(&self) -> Result<Timeouts, RouteError> {
        Ok(Timeouts {
            request: self.duration(TIMEOUT, "request")?,
            response: self.duration(TIMEOUT, "response")?,
            idle: self.duration(TIMEOUT, "idle")?,
        })
    }

    /// Retries from `retry.*/limit`, `http` (HTTP routes), `grpc` (gRPC routes) and `timeout`;
    /// `None` when none is set.
    pub fn retry(&self, kind: RouteKind) -> Result<Option<Retry>, RouteError> {
        let limit = self.get(RETRY, "limit");
        let conditions = match kind {
            RouteKind::Http => self.get(RETRY, "http"),
            RouteKind::Grpc => self.get(RETRY, "grpc"),
        };
        let timeout = self.duration(RETRY, "timeout")?;
        if limit.is_none() && conditions.is_none() && timeout.is_none() {
            return Ok(None);
        }
        let limit = match limit {
            None => DEFAULT_RETRY_LIMIT,
            Some(found) => found
                .value
                .trim()
                .parse()
                .map_err(|_| RouteError::Annotation {
                    field: found.key,
                    value: found.value.to_string(),
                    expected: "a number of retries, like 3",
                })?,
        };
        let mut retry = Retry {
            limit,
            max_request_bytes: RETRY_MAX_REQUEST_BYTES,
            statuses: Vec::new(),
            codes: Vec::new(),
            timeout,
            backoff: None,
        };
        match kind {
            RouteKind::Http => {
                retry.statuses = match conditions {
                    Some(found) => http_statuses(&found)?,
                    None => vec![500..=599],
                };
            }
            RouteKind::Grpc => {
                retry.codes = match conditions {
                    Some(found) => grpc_codes(&found)?,
                    None => vec![
                        GrpcCode::Cancelled,
                        GrpcCode::DeadlineExceeded,
                        GrpcCode::ResourceExhausted,
                        GrpcCode::Unavailable,
                    ],
                };
            }
        }
        Ok(Some(retry))
    }

    /// Failure accrual of a Service from `balancer.*/failure-accrual` and its settings.
    ///
    /// Unset: Linkerd's consecutive-failure defaults (Trellis enables accrual by default).
    /// `consecutive`: those defaults, overridden by `failure-accrual-consecutive-max-failures`,
    /// `-min-penalty`, `-max-penalty` and `-jitter-ratio`. `disabled`: no accrual.
    pub fn failure_accrual(&self) -> Result<Option<FailureAccrual>, RouteError> {
        let mut accrual = FailureAccrual::default();
        match self.get(BALANCER, "failure-accrual") {
            None => return Ok(Some(accrual)),
            Some(found) if found.value == "disabled" => return Ok(None),
            Some(found) if found.value == "consecutive" => {}
            Some(found) => {
                return Err(RouteError::Annotation {
                    field: found.key,
                    value: found.value.to_string(),
                    expected: "consecutive or disabled",
                });
            }
        }
        let name = |s: &str| format!("failure-accrual-consecutive-{s}");
        if let Some(found) = self.get(BALANCER, &name("max-failures")) {
            accrual.max_failures =
                found
                    .value
                    .trim()
                    .parse()
                    .map_err(|_| RouteError::Annotation {
                        field: found.key,
                        value: found.value.to_string(),
                        expected: "a number of failures, like 7",
                    })?;
        }
        if let Some(min) = self.duration(BALANCER, &name("min-penalty"))? {
            accrual.backoff.min = min;
        }
        if let Some(max) = self.duration(BALANCER, &name("max-penalty"))? {
            accrual.backoff.max = max;
        }
        if let Some(found) = self.get(BALANCER, &name("jitter-ratio")) {
            let ratio: f64 = found
                .value
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=100.0).contains(r))
                .ok_or_else(|| RouteError::Annotation {
                    field: found.key.clone(),
                    value: found.value.to_string(),
                    expected: "a ratio from 0 to 100, like 0.5",
                })?;
            // The ratio is within 0..=100, so the cast cannot truncate.
            let permille = (ratio * 1000.0).round() as u32;
            accrual.backoff = Backoff {
                jitter_permille: permille,
                ..accrual.backoff
            };
        }
        Ok(Some(accrual))
    }
}

/// `5xx`, `gateway-error` (502–504), `500` or `500-504`, comma-separated.
fn http_statuses(found: &Found<'_>) -> Result<Vec<RangeInclusive<u16>>, RouteError> {
    let bad = || RouteError::Annotation {
        field: found.key.clone(),
        value: found.value.to_string(),
        expected: "status codes or ranges from 100 to 599, 5xx or gateway-error, like 5xx,429",
    };
    let status = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s))
    };
    found
        .value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| match part.to_ascii_lowercase().as_str() {
            "5xx" => Ok(500..=599),
            "gateway-error" => Ok(502..=504),
            other => match other.split_once('-') {
                Some((a, b)) => match (status(a), status(b)) {
                    (Some(a), Some(b)) if a <= b => Ok(a..=b),
                    _ => Err(bad()),
                },
                None => status(other).map(|s| s..=s).ok_or_else(bad),
            },
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|v| if v.is_empty() { Err(bad()) } else { Ok(v) })
}

/// `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`.
fn grpc_codes(found: &Found<'_>) -> Result<Vec<GrpcCode>, RouteError> {
    let bad = || RouteError::Annotation {
        field: found.key.clone(),
        value: found.value.to_string(),
        expected: "cancelled, deadline-exceeded, internal, resource-exhausted or unavailable, \
                   comma-separated",
    };
    let mut codes = found
        .value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|code| match code.to_ascii_lowercase().as_str() {
            "cancelled" => Ok(GrpcCode::Cancelled),
            "deadline-exceeded" => Ok(GrpcCode::DeadlineExceeded),
            "internal" => Ok(GrpcCode::Internal),
            "resource-exhausted" => Ok(GrpcCode::ResourceExhausted),
            "unavailable" => Ok(GrpcCode::Unavailable),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if codes.is_empty() {
        return Err(bad());
    }
    codes.sort();
    codes.dedup();
    Ok(codes)
}
