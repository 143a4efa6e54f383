//! The control plane's gRPC servers against the local cluster: Certify with real tokens,
//! Destination.Get following a kwok Deployment, WatchPort following policy objects.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::Arc,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Secret, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};
use trellis_api::{
    destination::{Endpoint, ProtocolHint, Update},
    linkerd2_proxy_api::{
        destination::{GetDestination, destination_client::DestinationClient},
        identity::{CertifyRequest, identity_client::IdentityClient},
        inbound::{self, PortSpec, inbound_server_policies_client::InboundServerPoliciesClient},
    },
    well_known,
};
use trellis_operator::{
    control_plane::{
        self,
        certify::{self, IdentityMetrics, IdentityService, TokenReviewVerifier},
        destination::{self, DestinationMetrics, DestinationService},
        index::{ClusterSettings, SharedIndex},
        policy::{self, PolicyMetrics},
        tls::Transport,
    },
    pki::issuer::{IdentitySettings, SharedIssuer},
};
use trellis_tests::{
    DEFAULT_TIMEOUT,
    certs::{IssuerSecret, TestPki, proxy_csr, verify_chain},
    control::spawn_on_loopback,
    eventually,
    k8s::{self, apply_yaml, with_temp_ns},
};

const TD: &str = "cluster.local";

async fn create_sa(client: &Client, ns: &str, name: &str) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.to_string());
    accounts.create(&PostParams::default(), &sa).await.unwrap();
}

async fn put_issuer(client: &Client, ns: &str, pki: &TestPki) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    k8s::server_side_apply(&secrets, well_known::ISSUER_SECRET, &pki.issuer_secret(ns)).await;
}

/// Starts an identity server following the issuer Secret in `ns`; returns a client.
async fn start_identity(
    client: &Client,
    ns: &str,
    shutdown: &CancellationToken,
) -> IdentityClient<Channel> {
    let issuer = SharedIssuer::default();
    tokio::spawn(issuer.clone().follow_secret(
        client.clone(),
        ns.to_string(),
        well_known::ISSUER_SECRET.to_string(),
        shutdown.clone(),
    ));
    let (settings, rx) = tokio::sync::watch::channel(IdentitySettings::default());
    std::mem::forget(settings);
    let service = IdentityService::new(
        issuer,
        TokenReviewVerifier::new(client.clone()),
        rx,
        IdentityMetrics::default(),
    );
    let shutdown = shutdown.clone();
    let addr =
        spawn_on_loopback(|l| certify::serve(l, service, Transport::Plaintext, shutdown)).await;
    IdentityClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn certify_request(identity: &str, token: &str, csr: Vec<u8>) -> CertifyRequest {
    CertifyRequest {
        identity: identity.to_string(),
        token: token.as_bytes().to_vec(),
        certificate_signing_request: csr,
    }
}

#[tokio::test]
async fn certify_with_real_tokens() {
    with_temp_ns("cp-certify", |client, ns| async move {
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        create_sa(&client, &ns, "web").await;
        let pki = TestPki::generate(TD);
        put_issuer(&client, &ns, &pki).await;
        let mut identity = start_identity(&client, &ns, &shutdown).await;

        let web = well_known::identity_name("web", &ns, TD);
        let token = k8s::identity_token(&client, &ns, "web", 600, None).await;
        let (_key, csr) = proxy_csr(&web);
        let rsp = eventually(
            "Certify succeeds once the issuer is loaded",
            DEFAULT_TIMEOUT,
            || {
                let mut identity = identity.clone();
                let req = certify_request(&web, &token, csr.clone());
                async move { identity.certify(req).await.map_err(|s| format!("{s:?}")) }
            },
        )
        .await
        .into_inner();
        assert!(rsp.valid_until.is_some());
        let sans = verify_chain(
            &rsp.leaf_certificate,
            &rsp.intermediate_certificates,
            &pki.anchor_der(),
        );
        assert_eq!(sans, vec![web.clone()]);

        // A token of `web` asking for `default`'s identity.
        let other = well_known::identity_name("default", &ns, TD);
        let (_key, other_csr) = proxy_csr(&other);
        let status = identity
            .certify(certify_request(&other, &token, other_csr.clone()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains("identity mismatch"), "{status:?}");

        // A forged token.
        let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6eDp5In0.c2ln";
        let status = identity
            .certify(certify_request(&web, forged, csr.clone()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains("token not authenticated"),
            "{status:?}"
        );

        // A malformed CSR.
        let status = identity
            .certify(certify_request(&web, &token, b"garbage".to_vec()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("malformed csr"), "{status:?}");

        // Rotating the issuer Secret is picked up with no restart.
        let rotated = TestPki::generate(TD);
        put_issuer(&client, &ns, &rotated).await;
        eventually(
            "Certify signs with the rotated issuer",
            DEFAULT_TIMEOUT,
            || {
                let mut identity = identity.clone();
                let req = certify_request(&web, &token, csr.clone());
                let anchor = rotated.anchor_der();
                async move {
                    let rsp = identity
                        .certify(req)
                        .await
                        .map_err(|s| format!("{s:?}"))?
                        .into_inner();
                    let issuer = rsp
                        .intermediate_certificates
                        .first()
                        .cloned()
                        .unwrap_or_default();
                    trellis_tests::certs::signed_by(&issuer, &anchor)
                        .map_err(|e| format!("still the old issuer: {e}"))
                }
            },
        )
        .await;
    })
    .await;
}

/// Starts an index fed from the cluster and a destination server on it; returns a client.
async fn start_destination(
    client: &Client,
    shutdown: &CancellationToken,
) -> (DestinationClient<Channel>, SharedIndex) {
    let index =
        control_plane::index::spawn(ClusterSettings::default(), client.clone(), shutdown.clone());
    let service = DestinationService::new(index.clone(), DestinationMetrics::default());
    let shutdown = shutdown.clone();
    let addr =
        spawn_on_loopback(|l| destination::serve(l, service, Transport::Plaintext, shutdown)).await;
    (
        DestinationClient::connect(format!("http://{addr}"))
            .await
            .unwrap(),
        index,
    )
}

/// Follows a Get stream, keeping the current endpoint set by address.
fn follow_get(
    mut stream: tonic::Streaming<trellis_api::linkerd2_proxy_api::destination::Update>,
) -> Arc<Mutex<BTreeMap<SocketAddr, Endpoint>>> {
    let set = Arc::new(Mutex::new(BTreeMap::new()));
    let out = set.clone();
    tokio::spawn(async move {
        while let Ok(Some(update)) = stream.message().await {
            let update = Update::try_from(update).unwrap();
            let mut set = out.lock();
            match update {
                Update::Add {
                    endpoints,
                    set_labels,
                } => {
                    assert_eq!(set_labels.get("service").map(String::as_str), Some("web"));
                    for ep in endpoints {
                        set.insert(ep.addr, ep);
                    }
                }
                Update::Remove(addrs) => {
                    for addr in addrs {
                        set.remove(&addr);
                    }
                }
                Update::NoEndpoints { .. } => set.clear(),
            }
        }
    });
    set
}

async fn pod_addrs(client: &Client, ns: &str) -> BTreeSet<SocketAddr> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status.and_then(|s| s.pod_ip))
        .map(|ip| SocketAddr::new(ip.parse().unwrap(), 8080))
        .collect()
}

async fn scale(client: &Client, ns: &str, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

async fn await_endpoints(
    client: &Client,
    ns: &str,
    set: &Arc<Mutex<BTreeMap<SocketAddr, Endpoint>>>,
    replicas: usize,
) {
    eventually(
        &format!("Get streams the {replicas} pods of the Deployment"),
        DEFAULT_TIMEOUT,
        || async {
            let pods = pod_addrs(client, ns).await;
            let streamed: BTreeSet<SocketAddr> = set.lock().keys().copied().collect();
            if pods.len() == replicas && streamed == pods {
                Ok(())
            } else {
                Err(format!("pods {pods:?}, streamed {streamed:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn destination_get_follows_a_scaled_deployment() {
    with_temp_ns("cp-destination", |client, ns| async move {
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        // The `web` Deployment, its pods labelled with the control-plane namespace.
        let labels =
            serde_json::json!({ "labels": { "trellis.dev/control-plane-ns": "trellis-system" } });
        let web = k8s::deployment_yaml("web", 2, labels, k8s::web_pod_spec());
        let web = format!("{web}---{}", k8s::WEB_SERVICE_YAML);
        apply_yaml(&client, Some(&ns), &web).await.unwrap();
        let (mut destination, _index) = start_destination(&client, &shutdown).await;
        let path = format!("web.{ns}.svc.cluster.local:80");
        let get = |path: String| GetDestination {
            path,
            context_token: format!(r#"{{"ns":"{ns}"}}"#),
            ..GetDestination::default()
        };

        let stream = eventually(
            "Get is accepted once the Service is indexed",
            DEFAULT_TIMEOUT,
            || {
                let mut destination = destination.clone();
                let req = get(path.clone());
                async move { destination.get(req).await.map_err(|s| format!("{s:?}")) }
            },
        )
        .await
        .into_inner();
        let set = follow_get(stream);
        await_endpoints(&client, &ns, &set, 2).await;
        {
            let set = set.lock();
            let ep = set.values().next().unwrap();
            assert_eq!(
                ep.identity.as_deref(),
                Some(well_known::identity_name("default", &ns, TD).as_str())
            );
            assert_eq!(ep.hint, ProtocolHint::H2);
            assert_eq!(ep.weight, 10_000);
            assert_eq!(ep.labels.get("deployment").map(String::as_str), Some("web"));
            assert!(ep.labels.contains_key("pod"));
        }

        // GetProfile by a pod's IP: its endpoint has Get's labels, and the namespace Get gives
        // on the set.
        let from_get = set.lock().values().next().unwrap().clone();
        let mut profiles = destination
            .get_profile(get(from_get.addr.to_string()))
            .await
            .unwrap()
            .into_inner();
        let profile = profiles.message().await.unwrap().unwrap();
        let endpoint = profile
            .endpoint
            .expect("a pod IP's profile has its endpoint");
        let labels: BTreeMap<String, String> = endpoint.metric_labels.into_iter().collect();
        let mut expected = from_get.labels.clone();
        expected.insert("namespace".into(), ns.clone());
        assert_eq!(labels, expected);

        scale(&client, &ns, 5).await;
        await_endpoints(&client, &ns, &set, 5).await;
        scale(&client, &ns, 1).await;
        await_endpoints(&client, &ns, &set, 1).await;

        // Names that cannot exist, and Services that do not.
        let status = destination
            .get(get("example.com:80".into()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let status = destination
            .get(get(format!("nope.{ns}.svc.cluster.local:80")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        // GetProfile: a default profile, never NotFound.
        let mut profiles = destination
            .get_profile(get(format!("nope.{ns}.svc.cluster.local:80")))
            .await
            .unwrap()
            .into_inner();
        let profile = profiles.message().await.unwrap().unwrap();
        assert_eq!(
            profile.fully_qualified_name,
            format!("nope.{ns}.svc.cluster.local")
        );
        assert!(profile.retry_budget.is_some());
    })
    .await;
}

/// The Server of the web Deployment ([`k8s::web_deployment_yaml`]) in the policy tests.
const POLICY_SERVER: &str = r#"
apiVersion: policy.trellis.dev/v1alpha1
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
  accessPolicy: deny
"#;

const POLICY_AUTHZ: &str = r#"
apiVersion: policy.trellis.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: web-clients}
spec:
  identityRefs: [{kind: ServiceAccount, name: client}]
---
apiVersion: policy.trellis.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-allow-client}
spec:
  targetRef: {group: policy.trellis.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.trellis.dev, kind: MeshTLSAuthentication, name: web-clients}
"#;

async fn apply_eventually(client: &Client, ns: &str, yaml: &str) {
    eventually("policy objects are accepted", DEFAULT_TIMEOUT, || async {
        apply_yaml(client, Some(ns), yaml).await
    })
    .await;
}

#[tokio::test]
async fn watch_port_reflects_a_new_authorization_policy() {
    with_temp_ns("cp-policy", |client, ns| async move {
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        k8s::install_crds(&client).await;
        let web = format!("{}---{POLICY_SERVER}", k8s::web_deployment_yaml(1));
        apply_eventually(&client, &ns, &web).await;
        let index = control_plane::index::spawn(
            ClusterSettings::default(),
            client.clone(),
            shutdown.clone(),
        );
        let addr = spawn_on_loopback(|listener| {
            policy::serve(
                listener,
                index,
                PolicyMetrics::default(),
                Transport::Plaintext,
                shutdown.clone(),
            )
        })
        .await;
        let policy = InboundServerPoliciesClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let pod = eventually("the web pod exists", DEFAULT_TIMEOUT, || async {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .first()
                .map(|p| p.metadata.name.clone().unwrap())
                .ok_or_else(|| "no pod yet".to_string())
        })
        .await;
        let spec = PortSpec {
            workload: format!(r#"{{"ns":"{ns}","pod":"{pod}"}}"#),
            port: 8080,
        };
        let mut stream = eventually("WatchPort answers for the pod", DEFAULT_TIMEOUT, || {
            let mut policy = policy.clone();
            let spec = spec.clone();
            async move {
                let mut stream = policy
                    .watch_port(spec)
                    .await
                    .map_err(|s| format!("{s:?}"))?
                    .into_inner();
                let first = stream
                    .message()
                    .await
                    .map_err(|s| format!("{s:?}"))?
                    .ok_or("ended")?;
                // Wait until the index has the Server, not only the pod.
                if first.labels.get("name").map(String::as_str) == Some("web-http") {
                    Ok((stream, first))
                } else {
                    Err(format!("labels {:?}", first.labels))
                }
            }
        })
        .await;
        let first = stream.1;
        assert!(
            first.authorizations.is_empty(),
            "deny: {:?}",
            first.authorizations
        );
        assert!(matches!(
            first.protocol.unwrap().kind,
            Some(inbound::proxy_protocol::Kind::Http1(_))
        ));

        apply_eventually(&client, &ns, POLICY_AUTHZ).await;
        let next = tokio::time::timeout(DEFAULT_TIMEOUT, stream.0.message())
            .await
            .expect("an update within the timeout")
            .unwrap()
            .unwrap();
        assert_eq!(next.authorizations.len(), 1, "{next:?}");
        let authz = &next.authorizations[0];
        assert_eq!(authz.labels["name"], "web-allow-client");
        let Some(inbound::authn::Permit::MeshTls(tls)) =
            authz.authentication.clone().unwrap().permit
        else {
            panic!("meshTLS expected: {authz:?}");
        };
        let Some(inbound::authn::permit_mesh_tls::Clients::Identities(ids)) = tls.clients else {
            panic!("identities expected");
        };
        assert_eq!(
            ids.identities[0].name,
            well_known::identity_name("client", &ns, TD)
        );

        // A pod that does not exist is NotFound (retried by the proxy); a bad port is invalid.
        let mut client_ = policy.clone();
        let status = client_
            .get_port(PortSpec {
                workload: format!(r#"{{"ns":"{ns}","pod":"nope"}}"#),
                port: 8080,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = client_
            .get_port(PortSpec {
                workload: format!(r#"{{"ns":"{ns}","pod":"{pod}"}}"#),
                port: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    })
    .await;
}
