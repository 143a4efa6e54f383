//! Inbound routes compiled for the data path: which route of the server a request is on,
//! so that the route's authorizations and filters apply to it.

use std::sync::Arc;

use http::Request;
use trellis_api::inbound::{InboundRoute, ServerPolicy};

use crate::route::{
    filter::Filters,
    matcher::{Hosts, InvalidMatch, Match, Specificity},
};

#[derive(Debug)]
struct Rule {
    matches: Vec<Match>,
    filters: Filters,
}

#[derive(Debug)]
struct Route {
    hosts: Hosts,
    rules: Vec<Rule>,
}

/// The routes of one server policy; empty when the server has none (every request is on
/// the server's catch-all route).
#[derive(Debug, Default)]
pub struct InboundRoutes {
    routes: Vec<Route>,
    /// The policy's routes could not be compiled: no request is on any route.
    invalid: bool,
}

/// The route a request is on.
#[derive(Clone, Copy, Debug)]
pub struct OnRoute<'a> {
    /// The route, as the policy lists it.
    pub route: &'a InboundRoute,
    /// The matched rule's filters.
    pub filters: &'a Filters,
    /// The path prefix the rule matched, for prefix redirects.
    pub prefix: Option<&'a str>,
}

impl InboundRoutes {
    /// Compiles `policy`'s routes.
    pub fn new(policy: &ServerPolicy) -> Result<Self, InvalidMatch> {
        let routes = policy
            .routes
            .iter()
            .map(|r| {
                let rules = r
                    .rules
                    .iter()
                    .map(|rule| {
                        Ok(Rule {
                            matches: rule
                                .matches
                                .iter()
                                .map(Match::compile)
                                .collect::<Result<_, _>>()?,
                            filters: Filters::new(&rule.filters),
                        })
                    })
                    .collect::<Result<_, InvalidMatch>>()?;
                Ok(Route {
                    hosts: Hosts::new(&r.hosts),
                    rules,
                })
            })
            .collect::<Result<_, InvalidMatch>>()?;
        Ok(Self {
            routes,
            invalid: false,
        })
    }

    /// Whether the server has routes of its own.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && !self.invalid
    }

    /// The route of `req` in `policy` (which these routes were compiled from): the most
    /// specific matching rule, the first listed on a tie; `None` when no rule matches.
    pub fn select<'a, B>(
        &'a self,
        policy: &'a ServerPolicy,
        req: &Request<B>,
    ) -> Option<OnRoute<'a>> {
        let mut best: Option<(Specificity, OnRoute<'a>)> = None;
        for (route, api) in self.routes.iter().zip(&policy.routes) {
            if !route.hosts.matches(req) {
                continue;
            }
            for rule in &route.rules {
                let found = if rule.matches.is_empty() {
                    Some((Specificity::default(), None))
                } else {
                    rule.matches
                        .iter()
                        .filter(|m| m.matches(req))
                        .map(|m| (m.specificity(), m.prefix()))
                        .max_by_key(|(s, _)| *s)
                };
                if let Some((spec, prefix)) = found
                    && best.as_ref().is_none_or(|(b, _)| spec > *b)
                {
                    best = Some((
                        spec,
                        OnRoute {
                            route: api,
                            filters: &rule.filters,
                            prefix,
                        },
                    ));
                }
            }
        }
        best.map(|(_, r)| r)
    }
}

/// A policy with its compiled routes.
#[derive(Debug)]
pub struct CompiledPolicy {
    /// The policy.
    pub policy: Arc<ServerPolicy>,
    /// Its routes.
    pub routes: InboundRoutes,
}

impl CompiledPolicy {
    /// Compiles `policy`; routes that cannot be compiled refuse every request (a policy the
    /// proxy cannot enforce fails closed), with a warning.
    pub fn new(policy: Arc<ServerPolicy>) -> Self {
        let routes = InboundRoutes::new(&policy).unwrap_or_else(|error| {
            tracing::warn!(%error, server = policy.meta.name(), "Server routes cannot be compiled; refusing its requests");
            InboundRoutes {
                routes: Vec::new(),
                invalid: true,
            }
        });
        Self { policy, routes }
    }
}
