//! ServiceProfiles → destination profiles (routes, retry budget, timeouts, splits).

use trellis_api::destination::{
    Profile, RequestMatch, ResponseClass, ResponseMatch, RetryBudget, Route, WeightedDst,
};
use trellis_crds::v1alpha1::service_profile::{
    self as sp, Method, RequestMatchLeaf, RequestMatchTerm, ResponseMatchLeaf, ResponseMatchTerm,
    ServiceProfileSpec, StatusRange,
};

fn method(m: Method) -> http::Method {
    match m {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
    }
}

fn conj(mut parts: Vec<RequestMatch>) -> RequestMatch {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        RequestMatch::All(parts)
    }
}

fn leaf(l: &RequestMatchLeaf) -> RequestMatch {
    let mut parts = Vec::new();
    parts.extend(l.method.map(|m| RequestMatch::Method(method(m))));
    parts.extend(l.path_regex.clone().map(RequestMatch::Path));
    conj(parts)
}

fn term(t: &RequestMatchTerm) -> RequestMatch {
    let mut parts = Vec::new();
    parts.extend(t.method.map(|m| RequestMatch::Method(method(m))));
    parts.extend(t.path_regex.clone().map(RequestMatch::Path));
    parts.extend(t.not.as_ref().map(|n| RequestMatch::Not(Box::new(leaf(n)))));
    conj(parts)
}

fn request_match(m: &sp::RequestMatch) -> RequestMatch {
    let mut parts = Vec::new();
    parts.extend(m.method.map(|m| RequestMatch::Method(method(m))));
    parts.extend(m.path_regex.clone().map(RequestMatch::Path));
    parts.extend(
        m.all
            .as_ref()
            .map(|a| RequestMatch::All(a.iter().map(term).collect())),
    );
    parts.extend(
        m.any
            .as_ref()
            .map(|a| RequestMatch::Any(a.iter().map(term).collect())),
    );
    parts.extend(m.not.as_ref().map(|n| RequestMatch::Not(Box::new(term(n)))));
    conj(parts)
}

fn status(s: &StatusRange) -> ResponseMatch {
    let clamp = |v: i32, d: u16| u16::try_from(v).ok().filter(|v| *v > 0).unwrap_or(d);
    ResponseMatch::Status {
        min: clamp(s.min, 100),
        max: clamp(s.max, 599),
    }
}

fn response_conj(mut parts: Vec<ResponseMatch>) -> ResponseMatch {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        ResponseMatch::All(parts)
    }
}

fn response_leaf(l: &ResponseMatchLeaf) -> ResponseMatch {
    status(&l.status)
}

fn response_term(t: &ResponseMatchTerm) -> ResponseMatch {
    let mut parts = Vec::new();
    parts.extend(t.status.as_ref().map(status));
    parts.extend(
        t.not
            .as_ref()
            .map(|n| ResponseMatch::Not(Box::new(response_leaf(n)))),
    );
    response_conj(parts)
}

fn response_match(m: &sp::ResponseMatch) -> ResponseMatch {
    let mut parts = Vec::new();
    parts.extend(m.status.as_ref().map(status));
    parts.extend(
        m.all
            .as_ref()
            .map(|a| ResponseMatch::All(a.iter().map(response_term).collect())),
    );
    parts.extend(
        m.any
            .as_ref()
            .map(|a| ResponseMatch::Any(a.iter().map(response_term).collect())),
    );
    parts.extend(
        m.not
            .as_ref()
            .map(|n| ResponseMatch::Not(Box::new(response_term(n)))),
    );
    response_conj(parts)
}

/// The profile a ServiceProfile describes for the Service `fully_qualified_name`.
pub fn from_spec(fully_qualified_name: String, spec: &ServiceProfileSpec) -> Profile {
    let routes = spec
        .routes
        .iter()
        .map(|r| Route {
            name: r.name.clone(),
            condition: request_match(&r.condition),
            response_classes: r
                .response_classes
                .iter()
                .map(|c| ResponseClass {
                    condition: response_match(&c.condition),
                    is_failure: c.is_failure,
                })
                .collect(),
            is_retryable: r.is_retryable,
            timeout: r.timeout.as_ref().and_then(|t| t.to_std().ok()),
        })
        .collect();
    let retry_budget = match &spec.retry_budget {
        Some(b) => Some(RetryBudget {
            retry_ratio: b.retry_ratio as f32,
            min_retries_per_second: u32::try_from(b.min_retries_per_second).unwrap_or(0),
            ttl: b.ttl.to_std().unwrap_or(RetryBudget::default().ttl),
        }),
        None => Some(RetryBudget::default()),
    };
    let dst_overrides = spec
        .dst_overrides
        .iter()
        .map(|d| WeightedDst {
            authority: d.authority.clone(),
            weight: u32::try_from(d.weight).unwrap_or(0),
        })
        .collect();
    Profile {
        fully_qualified_name,
        opaque_protocol: false,
        routes,
        retry_budget,
        dst_overrides,
        endpoint: None,
    }
}
