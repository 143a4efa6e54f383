//! Compiled request conditions: Gateway API matches (path, headers, query, method, gRPC
//! service and method) and hosts, with regular expressions compiled once per policy.

use http::{Method, Request};
use regex::Regex;
use trellis_api::route::{self as api, NameMatch, PathMatch, RpcMatch, ValueMatch};

/// A route condition that cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {source}")]
pub struct InvalidMatch {
    pattern: String,
    #[source]
    source: regex::Error,
}

/// Compiles `pattern` to match whole values only.
fn whole(pattern: &str) -> Result<Regex, InvalidMatch> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|source| InvalidMatch {
        pattern: pattern.to_string(),
        source,
    })
}

#[derive(Debug)]
enum Path {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
enum Value {
    Exact(String),
    Regex(Regex),
}

impl Value {
    fn compile(v: &ValueMatch) -> Result<Self, InvalidMatch> {
        Ok(match v {
            ValueMatch::Exact(s) => Self::Exact(s.clone()),
            ValueMatch::Regex(r) => Self::Regex(whole(r)?),
        })
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => s == value,
            Self::Regex(r) => r.is_match(value),
        }
    }
}

/// One compiled [`api::RequestMatch`].
#[derive(Debug)]
pub struct Match {
    path: Option<Path>,
    headers: Vec<(http::HeaderName, Value)>,
    query: Vec<(String, Value)>,
    method: Option<Method>,
    rpc: Option<RpcMatch>,
}

/// How specific a match is, for Gateway API precedence between routes: an exact path,
/// then a regular expression (longest pattern first, as Linkerd ranks them), then the
/// longest prefix, then a method, then the most headers, then the most query parameters.
/// Larger is more specific.
pub type Specificity = (u8, usize, bool, usize, usize);

impl Match {
    /// Compiles `m`; header names that are not valid never match.
    pub fn compile(m: &api::RequestMatch) -> Result<Self, InvalidMatch> {
        let path = match &m.path {
            None => None,
            Some(PathMatch::Exact(p)) => Some(Path::Exact(p.clone())),
            Some(PathMatch::Prefix(p)) => Some(Path::Prefix(p.trim_end_matches('/').to_string())),
            Some(PathMatch::Regex(r)) => Some(Path::Regex(whole(r)?)),
        };
        let named = |list: &[NameMatch]| -> Result<Vec<(String, Value)>, InvalidMatch> {
            list.iter()
                .map(|n| Ok((n.name.clone(), Value::compile(&n.value)?)))
                .collect()
        };
        let headers = named(&m.headers)?
            .into_iter()
            .map(|(name, value)| {
                let name = http::HeaderName::try_from(name.to_ascii_lowercase())
                    .unwrap_or_else(|_| http::HeaderName::from_static("x-trellis-invalid-name"));
                (name, value)
            })
            .collect();
        Ok(Self {
            path,
            headers,
            query: named(&m.query)?,
            method: m.method.clone(),
            rpc: m.rpc.clone(),
        })
    }

    /// The path prefix this match requires, when it is a prefix match.
    pub fn prefix(&self) -> Option<&str> {
        match &self.path {
            Some(Path::Prefix(p)) => Some(p),
            _ => None,
        }
    }

    /// This match's rank among matches of other routes.
    pub fn specificity(&self) -> Specificity {
        let (kind, len) = match &self.path {
            Some(Path::Exact(p)) => (3, p.len()),
            Some(Path::Regex(r)) => (2, r.as_str().len()),
            Some(Path::Prefix(p)) => (1, p.len()),
            None => (0, 0),
        };
        (
            kind,
            len,
            self.method.is_some(),
            self.headers.len(),
            self.query.len(),
        )
    }

    /// Whether `req` meets every condition set.
    pub fn matches<B>(&self, req: &Request<B>) -> bool {
        let path = req.uri().path();
        let path_ok = match &self.path {
            None => true,
            Some(Path::Exact(p)) => path == p,
            Some(Path::Prefix(p)) => {
                path.starts_with(p.as_str())
                    && (path.len() == p.len() || path.as_bytes().get(p.len()) == Some(&b'/'))
            }
            Some(Path::Regex(r)) => r.is_match(path),
        };
        if !path_ok || self.method.as_ref().is_some_and(|m| m != req.method()) {
            return false;
        }
        if let Some(rpc) = &self.rpc
            && !rpc_matches(rpc, path)
        {
            return false;
        }
        let headers_ok = self.headers.iter().all(|(name, value)| {
            req.headers()
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| value.matches(v)))
        });
        headers_ok && self.query_matches(req.uri().query())
    }

    fn query_matches(&self, query: Option<&str>) -> bool {
        self.query.iter().all(|(name, value)| {
            query.unwrap_or_default().split('&').any(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                k == name && value.matches(v)
            })
        })
    }
}

/// gRPC paths are `/<service>/<method>`.
fn rpc_matches(rpc: &RpcMatch, path: &str) -> bool {
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return false;
    };
    rpc.service.as_deref().is_none_or(|s| s == service)
        && rpc.method.as_deref().is_none_or(|m| m == method)
}

/// A route's hosts: exact names and `*.suffix` wildcards; empty matches every host.
#[derive(Debug, Default)]
pub struct Hosts(Vec<String>);

impl Hosts {
    /// The hosts of a route, lowercased.
    pub fn new(hosts: &[String]) -> Self {
        Self(hosts.iter().map(|h| h.to_ascii_lowercase()).collect())
    }

    /// Whether the request's host (`:authority` or `Host`, without port) is one of them.
    pub fn matches<B>(&self, req: &Request<B>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let host = req
            .uri()
            .host()
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host))
            })
            .unwrap_or_default()
            .to_ascii_lowercase();
        self.0.iter().any(|h| match h.strip_prefix('*') {
            Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
            None => *h == host,
        })
    }
}
