use std::{collections::HashMap, time::Duration};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use tonic::Code;
use trellis_api::linkerd2_proxy_api::identity as proto;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::*;
use crate::pki::issuer::{DEFAULT_CLOCK_SKEW, DEFAULT_LEAF_LIFETIME, IssuerPem};

const TD: &str = "cluster.local";

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// An anchor and an issuer signed by it; the issuer expires after `issuer_lifetime`.
fn mk_issuer_pem(issuer_lifetime: time::Duration) -> IssuerPem {
    let anchor_key = KeyPair::generate().unwrap();
    let anchor = ca_params("root.trellis.cluster.local")
        .self_signed(&anchor_key)
        .unwrap();
    let anchor_issuer = rcgen::Issuer::from_ca_cert_der(anchor.der(), anchor_key).unwrap();
    let issuer_key = KeyPair::generate().unwrap();
    let mut params = ca_params("identity.trellis.cluster.local");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + issuer_lifetime;
    let issuer = params.signed_by(&issuer_key, &anchor_issuer).unwrap();
    IssuerPem {
        cert_chain: issuer.pem(),
        key: issuer_key.serialize_pem(),
        trust_anchors: anchor.pem(),
    }
}

fn mk_csr(cn: &str, sans: &[&str]) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().der().to_vec()
}

#[derive(Default)]
struct FakeVerifier(HashMap<String, Result<ServiceAccountRef, String>>);

impl FakeVerifier {
    fn with(mut self, token: &str, ns: &str, sa: &str) -> Self {
        self.0.insert(
            token.into(),
            Ok(ServiceAccountRef {
                namespace: ns.into(),
                name: sa.into(),
            }),
        );
        self
    }
}

impl TokenVerifier for FakeVerifier {
    async fn verify(&self, token: &str) -> Result<ServiceAccountRef, TokenError> {
        match self.0.get(token) {
            Some(Ok(sa)) => Ok(sa.clone()),
            Some(Err(e)) => Err(TokenError::NotAuthenticated(e.clone())),
            None => Err(TokenError::NotAuthenticated("unknown token".into())),
        }
    }
}

fn service(issuer: Option<IssuerPem>) -> IdentityService<FakeVerifier> {
    let shared = SharedIssuer::default();
    if let Some(pem) = issuer {
        shared.update(&pem).unwrap();
    }
    let (tx, rx) = watch::channel(IdentitySettings::default());
    std::mem::forget(tx);
    IdentityService::new(
        shared,
        FakeVerifier::default().with("web-token", "shop", "web"),
        rx,
        IdentityMetrics::default(),
    )
}

fn web_identity() -> String {
    well_known::identity_name("web", "shop", TD)
}

fn request(identity: &str, token: &str, csr: Vec<u8>) -> proto::CertifyRequest {
    proto::CertifyRequest {
        identity: identity.into(),
        token: token.as_bytes().to_vec(),
        certificate_signing_request: csr,
    }
}

async fn status(svc: &IdentityService<FakeVerifier>, req: proto::CertifyRequest) -> Status {
    let err = svc.certify(req).await.unwrap_err();
    Status::from(err)
}

#[tokio::test]
async fn signs_a_leaf_for_the_proven_identity() {
    let pem = mk_issuer_pem(time::Duration::days(365));
    let svc = service(Some(pem.clone()));
    let id = web_identity();
    let rsp = svc
        .certify(request(&id, "web-token\n", mk_csr(&id, &[&id])))
        .await
        .unwrap();
    let (_, leaf) = X509Certificate::from_der(&rsp.leaf_der).unwrap();
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => (*d).to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sans, vec![id.clone()]);
    assert_eq!(rsp.intermediates_der.len(), 1);
    let (_, issuer) = X509Certificate::from_der(&rsp.intermediates_der[0]).unwrap();
    leaf.verify_signature(Some(issuer.public_key())).unwrap();
    assert!(!leaf.is_ca());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let lifetime = rsp
        .valid_until
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(lifetime <= DEFAULT_LEAF_LIFETIME + DEFAULT_CLOCK_SKEW);
    assert!(lifetime > DEFAULT_LEAF_LIFETIME - Duration::from_secs(60));
    // The serial increases.
    let rsp2 = svc
        .certify(request(&id, "web-token", mk_csr(&id, &[&id])))
        .await
        .unwrap();
    let (_, leaf2) = X509Certificate::from_der(&rsp2.leaf_der).unwrap();
    assert!(leaf2.serial > leaf.serial);
}

#[tokio::test]
async fn leaf_expiry_is_clamped_to_the_issuer() {
    let svc = service(Some(mk_issuer_pem(time::Duration::hours(1))));
    let id = web_identity();
    let rsp = svc
        .certify(request(&id, "web-token", mk_csr(&id, &[&id])))
        .await
        .unwrap();
    let left = rsp
        .valid_until
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(left <= Duration::from_secs(3600), "{left:?}");
}

#[tokio::test]
async fn refusals_have_clear_statuses() {
    let svc = service(Some(mk_issuer_pem(time::Duration::days(365))));
    let id = web_identity();
    let other = well_known::identity_name("api", "shop", TD);

    let s = status(
        &svc,
        request(&other, "web-token", mk_csr(&other, &[&other])),
    )
    .await;
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert!(s.message().contains("identity mismatch"), "{}", s.message());

    let s = status(&svc, request(&id, "web-token", b"not a csr".to_vec())).await;
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().contains("malformed csr"), "{}", s.message());

    let s = status(&svc, request(&id, "web-token", mk_csr(&id, &[&other]))).await;
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert!(s.message().contains("SAN"), "{}", s.message());

    let s = status(&svc, request(&id, "web-token", mk_csr(&id, &[&id, &other]))).await;
    assert_eq!(s.code(), Code::FailedPrecondition);

    let s = status(&svc, request(&id, "web-token", mk_csr(&other, &[&id]))).await;
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert!(s.message().contains("common name"), "{}", s.message());

    let s = status(&svc, request(&id, "forged", mk_csr(&id, &[&id]))).await;
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert!(
        s.message().contains("token not authenticated"),
        "{}",
        s.message()
    );

    let s = status(&svc, request(&id, "", mk_csr(&id, &[&id]))).await;
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().contains("token"), "{}", s.message());
}

#[tokio::test]
async fn no_issuer_is_unavailable() {
    let svc = service(None);
    let id = web_identity();
    let s = status(&svc, request(&id, "web-token", mk_csr(&id, &[&id]))).await;
    assert_eq!(s.code(), Code::Unavailable);
}

#[test]
fn issuer_must_chain_to_the_anchors_and_a_bad_update_keeps_the_old_one() {
    let good = mk_issuer_pem(time::Duration::days(365));
    let other = mk_issuer_pem(time::Duration::days(365));
    let shared = SharedIssuer::default();
    shared.update(&good).unwrap();
    let before = shared.get().unwrap();
    let mismatched = IssuerPem {
        trust_anchors: other.trust_anchors.clone(),
        ..good.clone()
    };
    let err = shared.update(&mismatched).unwrap_err();
    assert!(err.to_string().contains("does not chain"), "{err}");
    let wrong_key = IssuerPem {
        key: other.key.clone(),
        ..good.clone()
    };
    assert!(
        shared
            .update(&wrong_key)
            .unwrap_err()
            .to_string()
            .contains("does not match")
    );
    assert!(Arc::ptr_eq(&before, &shared.get().unwrap()));
    shared.update(&other).unwrap();
    assert!(!Arc::ptr_eq(&before, &shared.get().unwrap()));
}

#[test]
fn usernames_must_be_service_accounts() {
    let sa = ServiceAccountRef::from_username("system:serviceaccount:shop:web").unwrap();
    assert_eq!(sa.identity_name(TD), web_identity());
    for bad in [
        "system:serviceaccount:shop",
        "system:serviceaccount:shop:web:x",
        "system:node:n1",
        "system:serviceaccount:Shop:web",
        "admin",
    ] {
        assert!(ServiceAccountRef::from_username(bad).is_err(), "{bad}");
    }
}

#[test]
fn csr_with_uri_san_is_refused() {
    let id = web_identity();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![id.clone()]).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://cluster.local/ns/shop/sa/web".try_into().unwrap(),
    ));
    let der = params.serialize_request(&key).unwrap().der().to_vec();
    let parsed = csr::parse(&der).unwrap();
    assert!(csr::check(&parsed, &id).is_err());
}

/// A change to a CSR's parameters.
type CsrEdit = dyn FnOnce(&mut CertificateParams);

/// A CSR for `id` (CN and SAN) that `edit` changes before it is signed.
fn csr_with(id: &str, edit: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec![id.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, id);
    edit(&mut params);
    params.serialize_request(&key).unwrap().der().to_vec()
}

#[tokio::test]
async fn csr_fields_that_could_widen_the_leaf_are_refused() {
    let svc = service(Some(mk_issuer_pem(time::Duration::days(365))));
    let id = web_identity();
    let cases: [(&str, Box<CsrEdit>); 5] = [
        (
            "subject attribute",
            Box::new(|p| p.distinguished_name.push(DnType::OrganizationName, "evil")),
        ),
        (
            "key usages",
            Box::new(|p| p.key_usages = vec![KeyUsagePurpose::KeyCertSign]),
        ),
        (
            "extended key usages",
            Box::new(|p| p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning]),
        ),
        (
            "basic constraints",
            Box::new(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
        ),
        (
            "basic constraints",
            Box::new(|p| p.is_ca = IsCa::ExplicitNoCa),
        ),
    ];
    for (want, edit) in cases {
        let s = status(&svc, request(&id, "web-token", csr_with(&id, edit))).await;
        assert_eq!(
            s.code(),
            Code::FailedPrecondition,
            "{want}: {}",
            s.message()
        );
        assert!(s.message().contains(want), "{want}: {}", s.message());
    }
    // The proxy's own CSR shape still passes.
    svc.certify(request(&id, "web-token", csr_with(&id, |_| {})))
        .await
        .unwrap();
}

#[test]
fn leaves_carry_a_subject_the_issuer_sets() {
    let shared = SharedIssuer::default();
    shared
        .update(&mk_issuer_pem(time::Duration::days(365)))
        .unwrap();
    let id = web_identity();
    // Sign directly, past the CSR checks, to see what the issuer itself copies.
    let der = csr_with(&id, |p| {
        p.distinguished_name.push(DnType::OrganizationName, "evil");
        p.distinguished_name.push(DnType::CountryName, "ZZ");
    });
    let csr = csr::parse(&der).unwrap();
    let settings = IdentitySettings::default();
    let rsp = shared
        .get()
        .unwrap()
        .sign(csr, &id, &settings.leaf)
        .unwrap();
    let (_, leaf) = X509Certificate::from_der(&rsp.leaf_der).unwrap();
    let subject: Vec<String> = leaf
        .subject()
        .iter_attributes()
        .map(|a| format!("{}={}", a.attr_type(), a.as_str().unwrap_or("?")))
        .collect();
    assert_eq!(subject, [format!("2.5.4.3={id}")]);
}

#[tokio::test]
async fn each_identity_is_rate_limited() {
    let svc = service(Some(mk_issuer_pem(time::Duration::days(365)))).with_rate_limit(RateLimit {
        burst: 2,
        per_second: 1,
    });
    let id = web_identity();
    for _ in 0..2 {
        svc.certify(request(&id, "web-token", mk_csr(&id, &[&id])))
            .await
            .unwrap();
    }
    let s = status(&svc, request(&id, "web-token", mk_csr(&id, &[&id]))).await;
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert!(
        s.message().contains(&id) && s.message().contains("retry later"),
        "{}",
        s.message()
    );
    // Refused tokens never spend the bucket of the identity they name.
    let fresh =
        service(Some(mk_issuer_pem(time::Duration::days(365)))).with_rate_limit(RateLimit {
            burst: 1,
            per_second: 1,
        });
    for _ in 0..3 {
        let s = status(&fresh, request(&id, "forged", mk_csr(&id, &[&id]))).await;
        assert_eq!(s.code(), Code::FailedPrecondition);
    }
    fresh
        .certify(request(&id, "web-token", mk_csr(&id, &[&id])))
        .await
        .unwrap();
}

#[tokio::test]
async fn token_review_always_asks_for_the_mesh_audience() {
    use crate::test_util::{mock_apiserver, ok};
    let (client, mut apiserver) = mock_apiserver();
    let verifier = TokenReviewVerifier::new(client);
    let verify = tokio::spawn(async move { verifier.verify("plain-apiserver-token").await });
    let (request, send) = apiserver.next_request().await.unwrap();
    let body = request.into_body().collect_bytes().await.unwrap();
    let review: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        review["spec"]["audiences"],
        serde_json::json!([well_known::IDENTITY_TOKEN_AUDIENCE])
    );
    // The apiserver says the token lacks the audience: refused, with no second review
    // without an audience (which would accept any pod's ordinary token).
    send.send_response(ok(&serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": "plain-apiserver-token"},
        "status": {"authenticated": false, "error": "token audiences [\"https://kubernetes.default.svc\"] is invalid for the target audiences"}
    })));
    let answered = tokio::spawn(async move {
        if let Some((_, send)) = apiserver.next_request().await {
            send.send_response(ok(&serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "status": {"authenticated": true, "user": {"username": "system:serviceaccount:shop:web"}}
            })));
            return true;
        }
        false
    });
    let err = tokio::time::timeout(Duration::from_secs(10), verify)
        .await
        .expect("verify finishes")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, TokenError::NotAuthenticated(_)), "{err}");
    assert!(err.to_string().contains("audience"), "{err}");
    answered.abort();
    assert!(
        !answered.await.unwrap_or(false),
        "a second TokenReview was sent"
    );
}
