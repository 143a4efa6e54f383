//! Fixtures for the admission-webhook tests: the AdmissionReview the apiserver sends for a
//! new pod, and a TLS client for the webhook server on `127.0.0.1`.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

/// The AdmissionReview (`admission.k8s.io/v1`, uid `uid`) for the CREATE of `pod` in `ns`
/// by the ReplicaSet controller; `name` is the request's name, when it has one.
pub fn pod_create_review(uid: &str, ns: &str, name: Option<&str>, pod: Value) -> Value {
    let mut review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": ns,
            "operation": "CREATE",
            "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
            "object": pod,
            "oldObject": null,
            "dryRun": false,
        }
    });
    if let Some(name) = name {
        review["request"]["name"] = name.into();
    }
    review
}

/// Connects over TLS to `addr` as `127.0.0.1`, trusting the PEM certificates `cas`; returns
/// the stream and the server's leaf certificate.
pub async fn connect_tls(
    addr: SocketAddr,
    cas: &[&str],
) -> Result<(TlsStream<TcpStream>, CertificateDer<'static>), String> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or("no peer certificate")?
        .clone()
        .into_owned();
    Ok((tls, leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_names_the_request_only_when_asked() {
        let pod = json!({ "kind": "Pod" });
        let anonymous = pod_create_review("u-1", "shop", None, pod.clone());
        assert_eq!(anonymous["request"]["uid"], "u-1");
        assert_eq!(anonymous["request"]["namespace"], "shop");
        assert_eq!(anonymous["request"]["object"], pod);
        assert!(anonymous["request"].get("name").is_none());
        let named = pod_create_review("u-2", "shop", Some("web"), pod);
        assert_eq!(named["request"]["name"], "web");
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(connect_tls(addr, &[]).await.is_err());
    }
}
