//! Smoke tests of the local cluster from `tests/cluster`: they fail when it is broken.

use std::collections::BTreeSet;

use k8s_openapi::api::{
    apps::v1::Deployment,
    authentication::v1::{TokenRequest, TokenReview},
    core::v1::{Namespace, Pod, ServiceAccount},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use trellis_api::well_known::IDENTITY_TOKEN_AUDIENCE;
use trellis_tests::{
    DEFAULT_TIMEOUT, eventually,
    k8s::{WEB_SERVICE_YAML, apply_yaml, await_object, web_deployment_yaml, with_temp_ns},
};

#[tokio::test]
async fn namespace_is_created_active_with_default_service_account() {
    with_temp_ns("smoke-ns", |client, ns| async move {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let obj = namespaces.get(&ns).await.unwrap();
        let phase = obj.status.and_then(|s| s.phase);
        assert_eq!(phase.as_deref(), Some("Active"), "namespace {ns}");
        let accounts: Api<ServiceAccount> = Api::namespaced(client, &ns);
        assert!(accounts.get_opt("default").await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn deployment_becomes_available_and_service_gets_endpoint_slice() {
    with_temp_ns("smoke-deploy", |client, ns| async move {
        let web = format!("{}---{WEB_SERVICE_YAML}", web_deployment_yaml(2));
        apply_yaml(&client, Some(&ns), &web).await.unwrap();

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        await_object(&deployments, "web", DEFAULT_TIMEOUT, |d| {
            let status = d.status.clone().unwrap_or_default();
            let available = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            match (available, status.available_replicas) {
                (true, Some(2)) => Ok(()),
                other => Err(format!("available, replicas = {other:?}")),
            }
        })
        .await;

        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let pod_ips: BTreeSet<String> = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|p| p.status.and_then(|s| s.pod_ip))
            .collect();
        assert_eq!(pod_ips.len(), 2, "two running pods with IPs: {pod_ips:?}");
        for ip in &pod_ips {
            let addr: std::net::Ipv4Addr = ip.parse().unwrap();
            assert!(
                addr.octets()[0] == 198 && addr.octets()[1] == 18 && addr.octets()[2] >= 128,
                "kwok pod IP {ip} is outside 198.18.128.0/17"
            );
        }

        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        let listed = eventually(
            "EndpointSlice of service web listing both pods",
            DEFAULT_TIMEOUT,
            || async {
                let ips: BTreeSet<String> = slices
                    .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .flat_map(|s| s.endpoints)
                    .flatten()
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                    .flat_map(|e| e.addresses)
                    .collect();
                if ips == pod_ips {
                    Ok(ips)
                } else {
                    Err(format!("{ips:?}"))
                }
            },
        )
        .await;
        assert_eq!(listed, pod_ips);
    })
    .await;
}

async fn request_token(client: &kube::Client, ns: &str, audience: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": { "audiences": [audience], "expirationSeconds": 600 }
    }))
    .unwrap();
    let response = accounts
        .create_token_request("default", &PostParams::default(), &request)
        .await
        .unwrap();
    response.status.unwrap().token.unwrap()
}

async fn review(client: &kube::Client, token: &str, audience: &str) -> TokenReview {
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review: TokenReview = serde_json::from_value(serde_json::json!({
        "spec": { "token": token, "audiences": [audience] }
    }))
    .unwrap();
    reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
}

#[tokio::test]
async fn token_request_validates_with_token_review_and_forgery_does_not() {
    with_temp_ns("smoke-token", |client, ns| async move {
        let token = request_token(&client, &ns, IDENTITY_TOKEN_AUDIENCE).await;

        let status = review(&client, &token, IDENTITY_TOKEN_AUDIENCE)
            .await
            .status
            .unwrap();
        assert_eq!(
            status.authenticated,
            Some(true),
            "error: {:?}",
            status.error
        );
        assert_eq!(
            status.user.unwrap().username.as_deref(),
            Some(format!("system:serviceaccount:{ns}:default").as_str())
        );
        assert_eq!(
            status.audiences.unwrap_or_default(),
            vec![IDENTITY_TOKEN_AUDIENCE.to_string()]
        );

        // The same token for another audience is refused.
        let other = review(&client, &token, "other.example")
            .await
            .status
            .unwrap();
        assert_ne!(
            other.authenticated,
            Some(true),
            "token accepted for a foreign audience"
        );

        // A token whose payload was altered (signature no longer matches) is refused.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        assert_eq!(parts.len(), 3, "a JWT has three parts");
        parts[1] = parts[1].chars().rev().collect();
        let forged = parts.join(".");
        let forged = review(&client, &forged, IDENTITY_TOKEN_AUDIENCE)
            .await
            .status
            .unwrap();
        assert_ne!(forged.authenticated, Some(true), "forged token accepted");

        // A token with a valid shape but a signature from nobody is refused.
        let mut unsigned: Vec<&str> = token.split('.').collect();
        unsigned[2] = "AAAA";
        let unsigned = review(&client, &unsigned.join("."), IDENTITY_TOKEN_AUDIENCE)
            .await
            .status
            .unwrap();
        assert_ne!(
            unsigned.authenticated,
            Some(true),
            "token with bogus signature accepted"
        );
        assert!(unsigned.error.is_some(), "a refused token carries an error");
    })
    .await;
}
