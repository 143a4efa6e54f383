use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn detect_bytes(input: &[u8]) -> (Protocol, Vec<u8>) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client.write_all(input).await.unwrap();
    drop(client);
    let (protocol, mut io) = detect(server, TIMEOUT).await.unwrap();
    let mut replayed = Vec::new();
    io.read_to_end(&mut replayed).await.unwrap();
    (protocol, replayed)
}

#[tokio::test]
async fn each_protocol_is_detected_and_every_byte_replayed() {
    let mut h2 = H2_PREFACE.to_vec();
    h2.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let cases: [(&[u8], Protocol); 11] = [
        // HTTP/1 request lines.
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Protocol::Http1),
        (b"POST /x?y=1 HTTP/1.0\r\n\r\n", Protocol::Http1),
        (b"GET / HTTP/1.1\n\n", Protocol::Http1),
        (b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", Protocol::Http1),
        // The HTTP/2 preface.
        (&h2, Protocol::Http2),
        // Anything else.
        (b"GET / HTTP/2.0\r\n", Protocol::Opaque),
        (b"SSH-2.0-OpenSSH_9.6\r\n", Protocol::Opaque),
        (b"\x00\x01\x02binary", Protocol::Opaque),
        (b"GET /\r\n", Protocol::Opaque),
        (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", Protocol::Opaque),
        (b"\x16\x02\x00", Protocol::Opaque),
    ];
    for (input, want) in cases {
        let (protocol, replayed) = detect_bytes(input).await;
        assert_eq!(protocol, want, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(replayed, input, "detection must replay every byte it read");
    }
}

#[tokio::test]
async fn detection_is_bounded() {
    // A line that never ends: detection stops at the bound, not at EOF.
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client
        .write_all(&vec![b'A'; MAX_DETECT_BYTES * 2])
        .await
        .unwrap();
    let (protocol, io) = detect(server, TIMEOUT).await.unwrap();
    assert_eq!(protocol, Protocol::Opaque);
    assert_eq!(io.prefix().len(), MAX_DETECT_BYTES);
}

#[tokio::test(start_paused = true)]
async fn silent_peers_are_opaque_after_the_timeout() {
    let (mut client, server) = tokio::io::duplex(1024);
    client.write_all(b"GET / HT").await.unwrap(); // partial, then silence
    let (protocol, io) = detect(server, Duration::from_secs(3)).await.unwrap();
    assert_eq!(protocol, Protocol::Opaque);
    assert_eq!(io.prefix(), b"GET / HT");
}

/// A real ClientHello from rustls, with and without SNI.
async fn client_hello(sni: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
    roots.add(ca.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[tokio::test]
async fn tls_client_hello_is_tls_with_its_sni() {
    let hello = client_hello("web.shop.serviceaccount.identity.trellis.cluster.local").await;
    let (protocol, replayed) = detect_bytes(&hello).await;
    assert_eq!(
        protocol,
        Protocol::Tls {
            sni: Some("web.shop.serviceaccount.identity.trellis.cluster.local".into())
        }
    );
    assert_eq!(replayed, hello);

    // An IP server name sends no SNI extension.
    let hello = client_hello("127.0.0.1").await;
    let (protocol, _) = detect_bytes(&hello).await;
    assert_eq!(protocol, Protocol::Tls { sni: None });
}

#[tokio::test]
async fn truncated_client_hello_is_not_misread() {
    let hello = client_hello("a.example").await;
    // Cut inside the record: EOF before it is complete means opaque, never a panic.
    for cut in [1, 3, 5, 6, 40, hello.len() - 1] {
        let (protocol, _) = detect_bytes(&hello[..cut]).await;
        assert_eq!(protocol, Protocol::Opaque, "cut at {cut}");
    }
    // A corrupted extension block yields TLS without SNI, not a panic.
    let mut bad = hello.clone();
    let len = bad.len();
    bad[len - 3] = 0xff;
    let (protocol, _) = detect_bytes(&bad).await;
    assert!(matches!(protocol, Protocol::Tls { .. }));
}
