use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::*;
use crate::test_util::TestPki;

const SERVER_ID: &str = "web.shop.serviceaccount.identity.trellis.cluster.local";
const CLIENT_ID: &str = "client.shop.serviceaccount.identity.trellis.cluster.local";

struct Side {
    store: Arc<Store>,
}

fn certified(pki: &TestPki, name: &str) -> Side {
    let store = Store::new(name.to_string());
    let leaf = pki.issue(name);
    verify::check_leaf(&pki.roots(), &leaf.chain, name).unwrap();
    store.set(leaf.chain.clone(), leaf.key()).unwrap();
    Side { store }
}

/// Runs one handshake over real sockets; returns the client's result and the identity the
/// server saw.
async fn handshake(
    server: server::Server,
    client: client::Client,
    expected_server_id: &str,
) -> (std::io::Result<()>, Option<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        match server.accept(tcp).await {
            Ok((mut tls, client_id)) => {
                let mut buf = [0; 4];
                if tls.read_exact(&mut buf).await.is_ok() {
                    let _ = tls.write_all(b"pong").await;
                    let _ = tls.shutdown().await;
                }
                Some(client_id)
            }
            Err(_) => None,
        }
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let res = async {
        let mut tls = client.connect(tcp, expected_server_id).await?;
        tls.write_all(b"ping").await?;
        let mut buf = [0; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"pong");
        Ok(())
    }
    .await;
    (res, srv.await.unwrap())
}

#[tokio::test]
async fn mutual_tls_carries_both_identities() {
    let pki = TestPki::new();
    let server_side = certified(&pki, SERVER_ID);
    let client_side = certified(&pki, CLIENT_ID);
    let server = server::Server::new(pki.roots(), server_side.store).unwrap();
    let client = client::Client::new(pki.roots(), Some(client_side.store)).unwrap();
    let (res, seen) = handshake(server, client, SERVER_ID).await;
    res.unwrap();
    assert_eq!(seen, Some(Some(CLIENT_ID.to_string())));
}

#[tokio::test]
async fn clients_without_a_certificate_have_no_identity() {
    let pki = TestPki::new();
    let server_side = certified(&pki, SERVER_ID);
    let server = server::Server::new(pki.roots(), server_side.store).unwrap();
    let client = client::Client::new(pki.roots(), None).unwrap();
    let (res, seen) = handshake(server, client, SERVER_ID).await;
    res.unwrap();
    assert_eq!(seen, Some(None));
}

#[tokio::test]
async fn client_rejects_a_server_with_another_identity() {
    let pki = TestPki::new();
    let server_side = certified(
        &pki,
        "other.shop.serviceaccount.identity.trellis.cluster.local",
    );
    let server = server::Server::new(pki.roots(), server_side.store).unwrap();
    let client = client::Client::new(pki.roots(), None).unwrap();
    let (res, _) = handshake(server, client, SERVER_ID).await;
    let err = res.unwrap_err().to_string();
    assert!(
        err.contains("NotValidForName") || err.contains("not valid"),
        "{err}"
    );
}

#[tokio::test]
async fn peers_from_another_trust_domain_are_rejected_both_ways() {
    let pki = TestPki::new();
    let rogue = TestPki::new();
    // A server certified by another anchor is rejected by the client.
    let server = server::Server::new(pki.roots(), certified(&rogue, SERVER_ID).store).unwrap();
    let client = client::Client::new(pki.roots(), None).unwrap();
    let (res, _) = handshake(server, client, SERVER_ID).await;
    assert!(res.is_err());
    // A client certified by another anchor is rejected by the server.
    let server = server::Server::new(pki.roots(), certified(&pki, SERVER_ID).store).unwrap();
    let client =
        client::Client::new(pki.roots(), Some(certified(&rogue, CLIENT_ID).store)).unwrap();
    let (res, seen) = handshake(server, client, SERVER_ID).await;
    assert!(res.is_err() || seen == Some(None), "{res:?} {seen:?}");
    assert_ne!(seen, Some(Some(CLIENT_ID.to_string())));
}

#[tokio::test]
async fn server_without_a_certificate_fails_the_handshake() {
    let pki = TestPki::new();
    let server = server::Server::new(pki.roots(), Store::new(SERVER_ID.into())).unwrap();
    let client = client::Client::new(pki.roots(), None).unwrap();
    let (res, seen) = handshake(server, client, SERVER_ID).await;
    assert!(res.is_err());
    assert_eq!(seen, None);
}

#[tokio::test]
async fn rotation_takes_effect_on_the_next_handshake() {
    let pki = TestPki::new();
    let store = Store::new(SERVER_ID.into());
    let first = pki.issue(SERVER_ID);
    store.set(first.chain.clone(), first.key()).unwrap();
    let second = pki.issue(SERVER_ID);
    store.set(second.chain.clone(), second.key()).unwrap();
    let current = store.current().unwrap();
    assert_eq!(current.cert[0], second.chain[0]);
    let server = server::Server::new(pki.roots(), store).unwrap();
    let client = client::Client::new(pki.roots(), None).unwrap();
    handshake(server, client, SERVER_ID).await.0.unwrap();
}

#[test]
fn leaf_checks_name_and_anchor() {
    let pki = TestPki::new();
    let leaf = pki.issue(SERVER_ID);
    check_ok(&pki, &leaf.chain, SERVER_ID);
    assert!(verify::check_leaf(&pki.roots(), &leaf.chain, CLIENT_ID).is_err());
    assert!(verify::check_leaf(&TestPki::new().roots(), &leaf.chain, SERVER_ID).is_err());
    assert_eq!(
        verify::peer_identity(&leaf.chain[0]).as_deref(),
        Some(SERVER_ID)
    );
}

fn check_ok(pki: &TestPki, chain: &[rustls::pki_types::CertificateDer<'static>], name: &str) {
    verify::check_leaf(&pki.roots(), chain, name).unwrap();
}

#[test]
fn anchors_must_be_pem_certificates() {
    assert!(trust_anchors("").is_err());
    assert!(trust_anchors("garbage").is_err());
    assert!(trust_anchors(crate::test_util::FAKE_ANCHORS_PEM).is_err());
    assert_eq!(trust_anchors(&TestPki::new().anchor_pem).unwrap().len(), 1);
}
