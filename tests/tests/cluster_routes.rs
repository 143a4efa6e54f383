//! Gateway API routes against the local cluster: HTTPRoutes attached to a Service reach
//! `OutboundPolicies.Watch` (weights, matches, timeouts, updates), and the control plane writes
//! route status (`Accepted`, `ResolvedRefs`) and `Accepted` on Servers and
//! AuthorizationPolicies. Bad route input is refused by the upstream CRD schema (negative
//! weight, malformed `timeouts`) or marked with a reason naming the field.
//!
//! Routes whose parent is a Server reach `InboundServerPolicies.WatchPort`, with the
//! authorizations of the AuthorizationPolicies that target each route.
//!
//! The Gateway API CRDs come from `tests/cluster/build gateway-api` (cached, fetched from the
//! Go module proxy); each test installs them with [`gateway::install_crds`].

use std::time::Duration;

use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use trellis_api::{
    inbound::{ClientAuthentication, ServerPolicy},
    linkerd2_proxy_api::{
        inbound::{
            self as inbound_proto, inbound_server_policies_client::InboundServerPoliciesClient,
        },
        outbound::{self as proto, outbound_policies_client::OutboundPoliciesClient, traffic_spec},
    },
    outbound::OutboundPolicy,
    route::{GrpcCode, PathMatch, RouteKind, RouteRef, RpcMatch},
};
use trellis_crds::{
    common::status::{conditions as policy_conditions, reasons as policy_reasons},
    gateway::{conditions, grpc_route::GRPCRoute, http_route::HTTPRoute, reasons},
    v1alpha1::{authorization_policy::AuthorizationPolicy, server::Server},
};
use trellis_operator::control_plane::{
    index::{self, ClusterSettings, Index},
    policy::{self, PolicyMetrics},
    status::{self, CONTROLLER_NAME},
    tls::Transport,
};
use trellis_tests::{
    DEFAULT_TIMEOUT,
    cluster::{self, kubectl},
    control::spawn_on_loopback,
    eventually, gateway,
    k8s::{self, apply_yaml, await_object, with_temp_ns},
};

/// Starts an index fed from the cluster, the status writer and a policy server on it (as
/// `serve::run_control_plane` wires them); returns an OutboundPolicies client.
async fn start_control_plane(
    client: &Client,
    shutdown: &CancellationToken,
) -> OutboundPoliciesClient<Channel> {
    let url = start_policy_server(client, shutdown).await;
    OutboundPoliciesClient::connect(url).await.unwrap()
}

/// As [`start_control_plane`]; returns the policy server's URL.
async fn start_policy_server(client: &Client, shutdown: &CancellationToken) -> String {
    let index = Index::shared(ClusterSettings::default());
    let (listed, listed_rx) = watch::channel(false);
    let synced = index::Synced::new(move || {
        listed.send_replace(true);
    });
    tokio::spawn(index::run_synced(
        index.clone(),
        client.clone(),
        synced,
        shutdown.clone(),
    ));
    tokio::spawn(status::run(
        index.clone(),
        client.clone(),
        listed_rx,
        shutdown.clone(),
    ));
    let shutdown = shutdown.clone();
    let addr = spawn_on_loopback(|listener| {
        policy::serve(
            listener,
            index,
            PolicyMetrics::default(),
            Transport::Plaintext,
            shutdown,
        )
    })
    .await;
    format!("http://{addr}")
}

fn services_yaml(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
                 spec: {{ports: [{{name: http, port: 80, appProtocol: http}}]}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn apply(client: &Client, ns: &str, yaml: &str) {
    apply_yaml(client, Some(ns), yaml)
        .await
        .unwrap_or_else(|e| panic!("apply refused: {e}\n{yaml}"));
}

/// Opens `OutboundPolicies.Watch` for `web.<ns>:80` from a client in `ns`.
async fn watch_web(
    policy: &OutboundPoliciesClient<Channel>,
    ns: &str,
) -> tonic::Streaming<proto::OutboundPolicy> {
    let spec = proto::TrafficSpec {
        source_workload: format!(r#"{{"ns":"{ns}","pod":"client"}}"#),
        target: Some(traffic_spec::Target::Authority(format!(
            "web.{ns}.svc.cluster.local:80"
        ))),
    };
    eventually("Watch answers for the Service", DEFAULT_TIMEOUT, || {
        let mut policy = policy.clone();
        let spec = spec.clone();
        async move {
            policy
                .watch(spec)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| format!("{s:?}"))
        }
    })
    .await
}

/// Reads `stream` until a message, converted to `T`, satisfies `want`; panics with the last
/// one on timeout.
async fn next_matching<M, T>(
    stream: &mut tonic::Streaming<M>,
    what: &str,
    want: impl Fn(&T) -> bool,
) -> T
where
    T: TryFrom<M> + std::fmt::Debug,
    T::Error: std::fmt::Debug,
{
    let mut last = None;
    let found = tokio::time::timeout(DEFAULT_TIMEOUT, async {
        while let Some(next) = stream.message().await.expect("stream open") {
            let value = T::try_from(next).expect("a valid message");
            if want(&value) {
                return Some(value);
            }
            last = Some(value);
        }
        None
    })
    .await;
    match found {
        Ok(Some(value)) => value,
        _ => panic!("nothing with {what}; last: {last:#?}"),
    }
}

/// Reads the stream until a policy satisfies `want`.
async fn next_policy(
    stream: &mut tonic::Streaming<proto::OutboundPolicy>,
    what: &str,
    want: impl Fn(&OutboundPolicy) -> bool,
) -> OutboundPolicy {
    next_matching(stream, what, want).await
}

/// `(backend Service name, weight)` of every backend of the first rule of each route.
fn split(policy: &OutboundPolicy) -> Vec<(String, u32)> {
    policy
        .routes
        .iter()
        .flat_map(|r| &r.rules[0].backends)
        .map(|b| (b.backend.meta.name().to_string(), b.weight))
        .collect()
}

/// Trellis's conditions on a route's Service parent `parent`, once written for the current
/// generation.
async fn route_conditions(client: &Client, ns: &str, name: &str, parent: &str) -> Vec<Condition> {
    let api: Api<HTTPRoute> = Api::namespaced(client.clone(), ns);
    let route = await_object(&api, name, DEFAULT_TIMEOUT, |r| {
        let ours = r
            .status
            .iter()
            .flat_map(|s| &s.parents)
            .find(|p| p.controller_name == CONTROLLER_NAME && p.parent_ref.name == parent);
        match ours {
            Some(p)
                if p.conditions.len() == 2
                    && p.conditions
                        .iter()
                        .all(|c| c.observed_generation == r.metadata.generation) =>
            {
                Ok(())
            }
            other => Err(format!("status: {other:?}")),
        }
    })
    .await;
    let status = route.status.unwrap_or_default();
    status
        .parents
        .into_iter()
        .find(|p| p.controller_name == CONTROLLER_NAME && p.parent_ref.name == parent)
        .map(|p| p.conditions)
        .unwrap_or_default()
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {conditions:?}"))
}

fn canary(weights: (u32, u32)) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: canary}}
spec:
  parentRefs: [{{group: core, kind: Service, name: web, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /books}}}}]
    backendRefs:
    - {{name: web-v1, port: 80, weight: {}}}
    - {{name: web-v2, port: 80, weight: {}}}
    timeouts: {{request: 10s}}
"#,
        weights.0, weights.1
    )
}

#[tokio::test]
async fn a_split_route_reaches_the_policy_stream_and_gets_status() {
    let client = cluster::client().await;
    gateway::install_crds(&client).await;
    with_temp_ns("routes-split", |client, ns| async move {
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        let policy = start_control_plane(&client, &shutdown).await;
        apply(&client, &ns, &services_yaml(&["web", "web-v1", "web-v2"])).await;
        let mut stream = watch_web(&policy, &ns).await;

        apply(&client, &ns, &canary((90, 10))).await;
        let first = next_policy(&mut stream, "the canary route", |p| {
            p.routes.first().map(|r| r.meta.name()) == Some("canary")
        })
        .await;
        assert_eq!(first.routes.len(), 1, "{first:#?}");
        let route = &first.routes[0];
        assert_eq!(
            route.meta,
            RouteRef::Resource {
                group: "gateway.networking.k8s.io".into(),
                kind: "HTTPRoute".into(),
                namespace: ns.clone(),
                name: "canary".into(),
                port: 0,
            }
        );
        let rule = &route.rules[0];
        assert_eq!(
            rule.matches[0].path,
            Some(PathMatch::Prefix("/books".into()))
        );
        assert_eq!(
            split(&first),
            [("web-v1".to_string(), 90), ("web-v2".to_string(), 10)]
        );
        assert_eq!(
            rule.backends[0].backend.path,
            format!("web-v1.{ns}.svc.cluster.local:80")
        );
        assert_eq!(rule.timeouts.request, Some(Duration::from_secs(10)));

        // The weights move: the open stream gets the new split.
        apply(&client, &ns, &canary((50, 50))).await;
        let moved = next_policy(&mut stream, "a 50/50 split", |p| {
            split(p) == [("web-v1".to_string(), 50), ("web-v2".to_string(), 50)]
        })
        .await;
        assert_eq!(moved.routes.len(), 1);

        let conditions = route_conditions(&client, &ns, "canary", "web").await;
        let accepted = find(&conditions, conditions::ACCEPTED);
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("True", reasons::ACCEPTED)
        );
        let resolved = find(&conditions, conditions::RESOLVED_REFS);
        assert_eq!(
            (resolved.status.as_str(), resolved.reason.as_str()),
            ("True", reasons::RESOLVED_REFS)
        );

        // Without the route the Service is back to its default route.
        let routes: Api<HTTPRoute> = Api::namespaced(client.clone(), &ns);
        routes
            .delete("canary", &DeleteParams::default())
            .await
            .unwrap();
        next_policy(&mut stream, "the default route", |p| {
            p.routes.first().map(|r| &r.meta) == Some(&RouteRef::Default("http".into()))
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn bad_route_input_is_refused_or_marked_with_the_field() {
    let client = cluster::client().await;
    gateway::install_crds(&client).await;
    with_temp_ns("routes-bad", |client, ns| async move {
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        let policy = start_control_plane(&client, &shutdown).await;
        apply(&client, &ns, &services_yaml(&["web", "web-v1"])).await;
        let route = |name: &str, annotations: &str, parent: &str, rule: &str| {
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
                 metadata: {{name: {name}, annotations: {{{annotations}}}}}\n\
                 spec:\n  parentRefs: [{{group: core, kind: Service, name: {parent}}}]\n\
                 \x20 rules:\n  - {rule}\n"
            )
        };

        // The upstream schema refuses a malformed duration and a negative weight, naming them.
        let err = apply_yaml(
            &client,
            Some(&ns),
            &route("bad-duration", "", "web", "timeouts: {request: ten seconds}"),
        )
        .await
        .expect_err("a malformed duration is refused");
        assert!(err.contains("spec.rules[0].timeouts.request"), "{err}");
        let err = apply_yaml(
            &client,
            Some(&ns),
            &route(
                "bad-weight",
                "",
                "web",
                "backendRefs: [{name: web-v1, port: 80, weight: -1}]",
            ),
        )
        .await
        .expect_err("a negative weight is refused");
        assert!(err.contains("spec.rules[0].backendRefs[0].weight"), "{err}");

        // What the schema lets through is marked.
        let nowhere = "{matches: [{path: {value: /nowhere}}], \
                       backendRefs: [{name: web-v1, port: 80, weight: 9}, {name: nope, port: 80}]}";
        let same = "{matches: [{path: {type: Exact, value: /same}}], backendRefs: [{name: web-v1, port: 80}]}";
        apply(&client, &ns, &route("to-nowhere", "", "web", nowhere)).await;
        apply(
            &client,
            &ns,
            &route(
                "bad-annotation",
                "timeout.linkerd.io/request: ten seconds",
                "web",
                "{matches: [{path: {value: /annotated}}]}",
            ),
        )
        .await;
        apply(
            &client,
            &ns,
            &route("orphan", "", "ghost", "{matches: [{path: {value: /ghost}}]}"),
        )
        .await;
        apply(&client, &ns, &route("first", "", "web", same)).await;
        apply(&client, &ns, &route("second", "", "web", same)).await;

        let c = route_conditions(&client, &ns, "to-nowhere", "web").await;
        assert_eq!(find(&c, conditions::ACCEPTED).status, "True");
        let resolved = find(&c, conditions::RESOLVED_REFS);
        assert_eq!(resolved.status, "False");
        assert_eq!(resolved.reason, reasons::BACKEND_NOT_FOUND);
        assert!(
            resolved
                .message
                .contains(&format!("spec.rules[0].backendRefs[1]: Service {ns}/nope not found")),
            "{resolved:?}"
        );

        let c = route_conditions(&client, &ns, "bad-annotation", "web").await;
        let accepted = find(&c, conditions::ACCEPTED);
        assert_eq!(accepted.status, "False");
        assert_eq!(accepted.reason, reasons::UNSUPPORTED_VALUE);
        assert!(
            accepted
                .message
                .contains("metadata.annotations[timeout.linkerd.io/request]"),
            "{accepted:?}"
        );

        let c = route_conditions(&client, &ns, "orphan", "ghost").await;
        let accepted = find(&c, conditions::ACCEPTED);
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", reasons::NO_MATCHING_PARENT)
        );

        let c = route_conditions(&client, &ns, "second", "web").await;
        let accepted = find(&c, conditions::ACCEPTED);
        assert_eq!(accepted.status, "True", "an overlap keeps the route");
        assert!(
            accepted
                .message
                .contains(&format!("spec.rules[0].matches[0] overlaps HTTPRoute {ns}/first")),
            "{accepted:?}"
        );

        // Proxies get the valid routes only, the older one first for the equal match, and the
        // unknown backend left out of its rule.
        let mut stream = watch_web(&policy, &ns).await;
        let policy = next_policy(&mut stream, "every valid route", |p| {
            let names: Vec<&str> = p.routes.iter().map(|r| r.meta.name()).collect();
            names.contains(&"to-nowhere") && names.contains(&"second")
        })
        .await;
        let names: Vec<&str> = policy.routes.iter().map(|r| r.meta.name()).collect();
        assert_eq!(names, ["first", "second", "to-nowhere"], "{policy:#?}");
        let nowhere = &policy.routes[2].rules[0].backends;
        assert_eq!(nowhere.len(), 1);
        assert_eq!(nowhere[0].backend.meta.name(), "web-v1");
        assert_eq!(nowhere[0].weight, 9);
    })
    .await;
}

#[tokio::test]
async fn servers_and_authorization_policies_get_accepted() {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    gateway::install_crds(&client).await;
    with_temp_ns("routes-policy-status", |client, ns| async move {
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        let _policy = start_control_plane(&client, &shutdown).await;
        apply(
            &client,
            &ns,
            r#"
apiVersion: policy.trellis.dev/v1alpha1
kind: Server
metadata: {name: web-http}
spec: {podSelector: {matchLabels: {app: web}}, port: http, proxyProtocol: HTTP/1}
---
apiVersion: policy.trellis.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: to-web}
spec:
  targetRef: {group: policy.trellis.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs: []
---
apiVersion: policy.trellis.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: to-ghost}
spec:
  targetRef: {group: policy.trellis.dev, kind: Server, name: ghost}
  requiredAuthenticationRefs: []
"#,
        )
        .await;
        let accepted = |conditions: Option<&Vec<Condition>>| {
            conditions
                .into_iter()
                .flatten()
                .find(|c| c.type_ == policy_conditions::ACCEPTED)
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
                .ok_or_else(|| "no Accepted condition yet".to_string())
        };
        let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
        let server = await_object(&servers, "web-http", DEFAULT_TIMEOUT, |s| {
            accepted(s.status.as_ref().map(|s| &s.conditions)).map(drop)
        })
        .await;
        let status = server.status.unwrap();
        assert_eq!(status.observed_generation, server.metadata.generation);
        let (state, reason, _) = accepted(Some(&status.conditions)).unwrap();
        assert_eq!(
            (state.as_str(), reason.as_str()),
            ("True", policy_reasons::ACCEPTED)
        );

        let policies: Api<AuthorizationPolicy> = Api::namespaced(client.clone(), &ns);
        for (name, want) in [("to-web", "True"), ("to-ghost", "False")] {
            let p = await_object(&policies, name, DEFAULT_TIMEOUT, |p| {
                accepted(p.status.as_ref().map(|s| &s.conditions)).map(drop)
            })
            .await;
            let (state, reason, message) =
                accepted(p.status.as_ref().map(|s| &s.conditions)).unwrap();
            assert_eq!(state, want, "{name}: {reason} {message}");
            if want == "False" {
                assert_eq!(reason, policy_reasons::REF_NOT_FOUND);
                assert!(
                    message.contains(&format!("Server {ns}/ghost not found")),
                    "{message}"
                );
            }
        }

        let (ok, out, err) = kubectl(&["get", "server", "web-http", "-n", &ns]).await;
        assert!(ok, "{err}");
        assert!(out.contains("True"), "the Accepted column: {out}");
    })
    .await;
}

#[tokio::test]
async fn a_grpc_route_makes_the_policy_grpc_with_retries() {
    let client = cluster::client().await;
    gateway::install_crds(&client).await;
    with_temp_ns("routes-grpc", |client, ns| async move {
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        let policy = start_control_plane(&client, &shutdown).await;
        apply(&client, &ns, &services_yaml(&["web", "web-v1"])).await;
        let mut stream = watch_web(&policy, &ns).await;
        apply(
            &client,
            &ns,
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: books
  annotations: {retry.linkerd.io/grpc: "unavailable,internal", retry.linkerd.io/limit: "2", retry.trellis.dev/timeout: 300ms}
spec:
  parentRefs: [{group: core, kind: Service, name: web, port: 80}]
  rules:
  - matches: [{method: {service: shop.Books, method: List}}]
    backendRefs: [{name: web-v1, port: 80}]
"#,
        )
        .await;
        let grpc = next_policy(&mut stream, "the GRPCRoute", |p| {
            p.routes.first().map(|r| r.meta.name()) == Some("books")
        })
        .await;
        let route = &grpc.routes[0];
        assert_eq!(route.kind, RouteKind::Grpc);
        assert_eq!(
            route.rules[0].matches[0].rpc,
            Some(RpcMatch {
                service: Some("shop.Books".into()),
                method: Some("List".into()),
            })
        );
        let retry = route.rules[0].retry.clone().expect("retries from the annotations");
        assert_eq!(retry.limit, 2);
        assert_eq!(retry.codes, [GrpcCode::Internal, GrpcCode::Unavailable]);
        assert_eq!(retry.timeout, Some(Duration::from_millis(300)));

        let routes: Api<GRPCRoute> = Api::namespaced(client.clone(), &ns);
        await_object(&routes, "books", DEFAULT_TIMEOUT, |r| {
            let ours = r
                .status
                .iter()
                .flat_map(|s| &s.parents)
                .find(|p| p.controller_name == CONTROLLER_NAME);
            let holds = |type_: &str| {
                ours.is_some_and(|p| {
                    p.conditions
                        .iter()
                        .any(|c| c.type_ == type_ && c.status == "True")
                })
            };
            if holds(conditions::ACCEPTED) && holds(conditions::RESOLVED_REFS) {
                Ok(())
            } else {
                Err(format!("status: {:?}", r.status))
            }
        })
        .await;
    })
    .await;
}

/// A Server on the web pods' `http` port with two routes, and a policy on the public one.
const INBOUND_ROUTES: &str = r#"
apiVersion: policy.trellis.dev/v1alpha1
kind: Server
metadata: {name: web-http}
spec: {podSelector: {matchLabels: {app: web}}, port: http, proxyProtocol: HTTP/1, accessPolicy: deny}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public}
spec:
  parentRefs: [{group: policy.trellis.dev, kind: Server, name: web-http}]
  rules: [{matches: [{path: {type: PathPrefix, value: /public}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin}
spec:
  parentRefs: [{group: policy.trellis.dev, kind: Server, name: web-http}]
  rules: [{matches: [{path: {type: PathPrefix, value: /admin}}]}]
---
apiVersion: policy.trellis.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: web-clients}
spec:
  identityRefs: [{kind: ServiceAccount, name: client}]
---
apiVersion: policy.trellis.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: public-clients}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: public}
  requiredAuthenticationRefs:
  - {group: policy.trellis.dev, kind: MeshTLSAuthentication, name: web-clients}
"#;

/// Reads `WatchPort` until a policy satisfies `want`.
async fn next_server(
    stream: &mut tonic::Streaming<inbound_proto::Server>,
    what: &str,
    want: impl Fn(&ServerPolicy) -> bool,
) -> ServerPolicy {
    next_matching(stream, what, want).await
}

/// The names of the authorizations of the route named `name`.
fn route_authorizations(policy: &ServerPolicy, name: &str) -> Vec<String> {
    policy
        .routes
        .iter()
        .filter(|r| r.meta.name() == name)
        .flat_map(|r| &r.authorizations)
        .map(|a| a.meta.name().to_string())
        .collect()
}

#[tokio::test]
async fn server_routes_reach_watch_port_with_their_own_authorizations() {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    gateway::install_crds(&client).await;
    with_temp_ns("routes-inbound", |client, ns| async move {
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        let url = start_policy_server(&client, &shutdown).await;
        let web = format!("{}---{INBOUND_ROUTES}", k8s::web_deployment_yaml(1));
        apply(&client, &ns, &web).await;
        let pod = eventually("the web pod exists", DEFAULT_TIMEOUT, || async {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .first()
                .and_then(|p| p.metadata.name.clone())
                .ok_or_else(|| "no pod yet".to_string())
        })
        .await;
        let inbound = InboundServerPoliciesClient::connect(url).await.unwrap();
        let spec = inbound_proto::PortSpec {
            workload: format!(r#"{{"ns":"{ns}","pod":"{pod}"}}"#),
            port: 8080,
        };
        let mut stream = eventually("WatchPort answers for the pod", DEFAULT_TIMEOUT, || {
            let mut inbound = inbound.clone();
            let spec = spec.clone();
            async move {
                inbound
                    .watch_port(spec)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| format!("{s:?}"))
            }
        })
        .await;

        let policy = next_server(&mut stream, "both routes, one authorized", |p| {
            p.meta.name() == "web-http"
                && p.routes.len() == 2
                && !route_authorizations(p, "public").is_empty()
        })
        .await;
        assert!(policy.authorizations.is_empty(), "accessPolicy deny");
        let paths: Vec<_> = policy
            .routes
            .iter()
            .map(|r| (r.meta.name(), r.rules[0].matches[0].path.clone()))
            .collect();
        assert_eq!(
            paths,
            [
                ("public", Some(PathMatch::Prefix("/public".into()))),
                ("admin", Some(PathMatch::Prefix("/admin".into()))),
            ],
            "most specific first"
        );
        assert_eq!(route_authorizations(&policy, "public"), ["public-clients"]);
        assert!(route_authorizations(&policy, "admin").is_empty());
        let public = &policy.routes[0].authorizations[0];
        assert_eq!(
            public.authentication,
            ClientAuthentication::MeshTls {
                identities: vec![format!(
                    "client.{ns}.serviceaccount.identity.trellis.cluster.local"
                )],
                suffixes: Vec::new(),
            }
        );

        // Status: the routes are Accepted by their Server parent, the policy by its route.
        let conditions = route_conditions(&client, &ns, "public", "web-http").await;
        assert_eq!(find(&conditions, conditions::ACCEPTED).status, "True");
        assert_eq!(find(&conditions, conditions::RESOLVED_REFS).status, "True");
        let policies: Api<AuthorizationPolicy> = Api::namespaced(client.clone(), &ns);
        await_object(&policies, "public-clients", DEFAULT_TIMEOUT, |p| {
            let accepted = p
                .status
                .iter()
                .flat_map(|s| &s.conditions)
                .find(|c| c.type_ == policy_conditions::ACCEPTED);
            match accepted {
                Some(c) if c.status == "True" => Ok(()),
                other => Err(format!("Accepted: {other:?}")),
            }
        })
        .await;

        policies
            .delete("public-clients", &DeleteParams::default())
            .await
            .unwrap();
        let policy = next_server(&mut stream, "no route authorization", |p| {
            p.routes.len() == 2 && p.routes.iter().all(|r| r.authorizations.is_empty())
        })
        .await;
        assert!(policy.authorizations.is_empty());
    })
    .await;
}
