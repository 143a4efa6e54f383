//! Route filters: header edits on requests and responses, and redirects the proxy answers.

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use trellis_api::route::{self as api, PathModifier};

use crate::http::{Body, proxy_error};

/// Header edits compiled to header names and values (invalid ones are dropped when the
/// policy is compiled, with a warning).
#[derive(Clone, Debug, Default)]
pub struct HeaderEdits {
    add: Vec<(HeaderName, HeaderValue)>,
    set: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

fn pair((name, value): &(String, String)) -> Option<(HeaderName, HeaderValue)> {
    let parsed = HeaderName::try_from(name.as_str())
        .ok()
        .zip(HeaderValue::try_from(value.as_str()).ok());
    if parsed.is_none() {
        tracing::warn!(%name, "Ignoring a header filter with an invalid name or value");
    }
    parsed
}

impl HeaderEdits {
    /// Compiles `m`.
    pub fn new(m: &api::HeaderModifier) -> Self {
        Self {
            add: m.add.iter().filter_map(pair).collect(),
            set: m.set.iter().filter_map(pair).collect(),
            remove: m
                .remove
                .iter()
                .filter_map(|n| HeaderName::try_from(n.as_str()).ok())
                .collect(),
        }
    }

    /// Applies the edits: remove, set, then add.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// The filters of a rule or a backend, compiled.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    request: Vec<HeaderEdits>,
    response: Vec<HeaderEdits>,
    redirect: Option<api::Redirect>,
}

impl Filters {
    /// Compiles `filters`; a later redirect replaces an earlier one.
    pub fn new(filters: &[api::Filter]) -> Self {
        let mut out = Self::default();
        for f in filters {
            match f {
                api::Filter::RequestHeaders(m) => out.request.push(HeaderEdits::new(m)),
                api::Filter::ResponseHeaders(m) => out.response.push(HeaderEdits::new(m)),
                api::Filter::Redirect(r) => out.redirect = Some(r.clone()),
            }
        }
        out
    }

    /// Whether the filters answer with a redirect.
    pub fn redirects(&self) -> bool {
        self.redirect.is_some()
    }

    /// Applies the request edits.
    pub fn request<B>(&self, req: &mut Request<B>) {
        for edits in &self.request {
            edits.apply(req.headers_mut());
        }
    }

    /// Applies the response edits.
    pub fn response<B>(&self, rsp: &mut Response<B>) {
        for edits in &self.response {
            edits.apply(rsp.headers_mut());
        }
    }

    /// The redirect answer for `req`, when the rule redirects; `matched_prefix` is the
    /// prefix the rule's path match consumed (for prefix rewrites).
    pub fn redirect<B>(
        &self,
        req: &Request<B>,
        matched_prefix: Option<&str>,
    ) -> Option<Response<Body>> {
        let r = self.redirect.as_ref()?;
        Some(redirect(r, req, matched_prefix))
    }
}

fn redirect<B>(
    r: &api::Redirect,
    req: &Request<B>,
    matched_prefix: Option<&str>,
) -> Response<Body> {
    let uri = req.uri();
    let host_header = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host));
    let scheme = r
        .scheme
        .clone()
        .or_else(|| uri.scheme_str().map(str::to_string))
        .unwrap_or_else(|| "http".into());
    let host = r
        .host
        .clone()
        .or_else(|| uri.host().or(host_header).map(str::to_string))
        .unwrap_or_default();
    let path = match &r.path {
        None => uri.path().to_string(),
        Some(PathModifier::Full(p)) => p.clone(),
        Some(PathModifier::Prefix(p)) => {
            let rest = matched_prefix
                .and_then(|m| uri.path().strip_prefix(m.trim_end_matches('/')))
                .unwrap_or(uri.path());
            format!("{}{}", p.trim_end_matches('/'), rest)
        }
    };
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let location = format!("{scheme}://{host}{port}{path}{query}");
    match (
        Uri::try_from(location.as_str()),
        StatusCode::from_u16(r.status),
    ) {
        (Ok(_), Ok(status)) => {
            let mut rsp = Response::new(http_body_util::Either::Right(http_body_util::Full::new(
                bytes::Bytes::new(),
            )));
            *rsp.status_mut() = status;
            if let Ok(v) = HeaderValue::try_from(location) {
                rsp.headers_mut().insert(header::LOCATION, v);
            }
            rsp
        }
        _ => proxy_error(StatusCode::INTERNAL_SERVER_ERROR, "invalid redirect"),
    }
}
