//! Outbound routes compiled for the data path: a [`RouteTable`] picks the rule of a
//! request (the most specific match across routes, the first listed on a tie), which
//! names its filters, weighted backends, timeouts and retries.

pub mod retry;

#[cfg(test)]
mod tests;

use std::{
    collections::BTreeSet,
    sync::{Arc, OnceLock},
};

use http::Request;
use rand::distr::{Distribution, weighted::WeightedIndex};
use trellis_api::route::{self as api, RouteKind, RouteRef, Timeouts};

use self::retry::RetryPolicy;
use crate::metrics::route::{RouteHandles, RouteMetrics};
use crate::route::{
    filter::Filters,
    matcher::{Hosts, InvalidMatch, Match, Specificity},
};

/// A backend of a rule, with its filters.
#[derive(Debug)]
pub struct Backend {
    /// The `Destination.Get` path, which names the balancer.
    pub path: String,
    /// The backend in metrics.
    pub meta: RouteRef,
    /// Filters for requests sent to it.
    pub filters: Filters,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    matches: Vec<Match>,
    /// Filters for every request of the rule.
    pub filters: Filters,
    /// Backends; empty: requests fail with 500.
    pub backends: Vec<Backend>,
    weights: Option<WeightedIndex<u32>>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Retries.
    pub retry: Option<RetryPolicy>,
}

impl Rule {
    /// Picks a backend by weight; `None` when the rule has no backend with weight.
    pub fn pick_backend(&self) -> Option<&Backend> {
        match (&self.weights, self.backends.len()) {
            (_, 0) => None,
            (_, 1) => self.backends.first(),
            (Some(w), _) => self.backends.get(w.sample(&mut rand::rng())),
            (None, _) => None,
        }
    }

    /// The prefix the request's matching path condition consumed, for prefix redirects.
    pub fn matched_prefix<'a>(&'a self, req: &Request<impl Sized>) -> Option<&'a str> {
        self.matches
            .iter()
            .find(|m| m.matches(req))
            .and_then(Match::prefix)
    }
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// The route in metrics.
    pub meta: RouteRef,
    /// HTTP or gRPC.
    pub kind: RouteKind,
    hosts: Hosts,
    /// Rules.
    pub rules: Vec<Rule>,
    handles: OnceLock<RouteHandles>,
}

impl Route {
    /// The route's metric handles under `parent`, resolved on first use.
    pub fn handles(&self, metrics: &RouteMetrics, parent: &RouteRef) -> &RouteHandles {
        self.handles
            .get_or_init(|| metrics.route(parent, &self.meta, self.kind))
    }
}

/// The routes of a target.
#[derive(Debug)]
pub struct RouteTable {
    parent: RouteRef,
    routes: Vec<Route>,
}

impl Default for RouteTable {
    fn default() -> Self {
        Self {
            parent: RouteRef::Default("none".into()),
            routes: Vec::new(),
        }
    }
}

/// A rule chosen for a request.
#[derive(Clone, Copy, Debug)]
pub struct Selected<'a> {
    /// The route.
    pub route: &'a Route,
    /// The rule.
    pub rule: &'a Rule,
}

impl RouteTable {
    /// Compiles the routes of `parent` (the Service, in metrics); an invalid regular
    /// expression fails the whole table.
    pub fn new(parent: RouteRef, routes: &[api::Route]) -> Result<Self, InvalidMatch> {
        let routes = routes
            .iter()
            .map(|r| {
                let rules = r.rules.iter().map(compile_rule).collect::<Result<_, _>>()?;
                Ok(Route {
                    meta: r.meta.clone(),
                    kind: r.kind,
                    hosts: Hosts::new(&r.hosts),
                    rules,
                    handles: OnceLock::new(),
                })
            })
            .collect::<Result<_, InvalidMatch>>()?;
        Ok(Self { parent, routes })
    }

    /// The parent the routes belong to.
    pub fn parent(&self) -> &RouteRef {
        &self.parent
    }

    /// Every backend path the routes name.
    pub fn backend_paths(&self) -> BTreeSet<String> {
        self.routes
            .iter()
            .flat_map(|r| &r.rules)
            .flat_map(|r| &r.backends)
            .map(|b| b.path.clone())
            .collect()
    }

    /// The rule for `req`: among routes whose hosts match, the most specific matching rule
    /// (a rule with no matches matches everything, least specifically); `None` when no
    /// rule matches.
    pub fn select<B>(&self, req: &Request<B>) -> Option<Selected<'_>> {
        let mut best: Option<(Specificity, Selected<'_>)> = None;
        for route in &self.routes {
            if !route.hosts.matches(req) {
                continue;
            }
            for rule in &route.rules {
                let spec = if rule.matches.is_empty() {
                    Some(Specificity::default())
                } else {
                    rule.matches
                        .iter()
                        .filter(|m| m.matches(req))
                        .map(Match::specificity)
                        .max()
                };
                if let Some(spec) = spec
                    && best.as_ref().is_none_or(|(b, _)| spec > *b)
                {
                    best = Some((spec, Selected { route, rule }));
                }
            }
        }
        best.map(|(_, s)| s)
    }
}

fn compile_rule(r: &api::Rule) -> Result<Rule, InvalidMatch> {
    let matches = r
        .matches
        .iter()
        .map(Match::compile)
        .collect::<Result<_, _>>()?;
    let backends: Vec<Backend> = r
        .backends
        .iter()
        .filter(|b| b.weight > 0)
        .map(|b| Backend {
            path: b.backend.path.clone(),
            meta: b.backend.meta.clone(),
            filters: Filters::new(&b.filters),
        })
        .collect();
    let weights = WeightedIndex::new(r.backends.iter().map(|b| b.weight).filter(|w| *w > 0)).ok();
    Ok(Rule {
        matches,
        filters: Filters::new(&r.filters),
        backends,
        weights,
        timeouts: r.timeouts,
        retry: r.retry.as_ref().map(RetryPolicy::new),
    })
}

/// A shared route table.
pub type Routes = Arc<RouteTable>;
