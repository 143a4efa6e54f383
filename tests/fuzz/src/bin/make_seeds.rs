//! Writes the checked-in starting corpus of every target to `seeds/<target>/` (run from
//! `tests/fuzz`): real messages made by the same encoders the mesh uses.

use std::{fs, path::Path};

use prost::Message;
use trellis_api::linkerd2_proxy_api::{
    destination as dst, identity as id, inbound as inb, outbound as outb,
};
use trellis_proxy::transport::header::{Header, SessionProtocol};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    fs::create_dir_all(&dir).expect("seeds directory");
    fs::write(dir.join(name), bytes).expect("seed file");
}

fn proto(name: &str, which: u8, message: &impl Message) {
    let mut bytes = vec![which];
    bytes.extend(message.encode_to_vec());
    write("proto", name, &bytes);
}

fn main() {
    write(
        "detect",
        "http1",
        b"GET /books HTTP/1.1\r\nHost: web.shop\r\n\r\n",
    );
    write(
        "detect",
        "h2",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    );
    write(
        "detect",
        "tls",
        &[
            0x16, 0x03, 0x01, 0x00, 0x31, 0x01, 0x00, 0x00, 0x2d, 0x03, 0x03,
        ],
    );
    write("detect", "opaque", b"\x00\x01redis\r\n");

    for (name, header) in [
        (
            "opaque",
            Header {
                port: 6379,
                name: None,
                protocol: None,
            },
        ),
        (
            "http2",
            Header {
                port: 8080,
                name: Some("web.shop.svc.cluster.local".into()),
                protocol: Some(SessionProtocol::Http2),
            },
        ),
        (
            "http1",
            Header {
                port: 80,
                name: None,
                protocol: Some(SessionProtocol::Http1),
            },
        ),
    ] {
        write("transport_header", name, &header.encode_message());
    }

    let pod = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "web-", "namespace": "shop", "annotations": {"config.trellis.dev/opaque-ports": "4000-4100"}},
                "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 8080}]}]}},
            "dryRun": false}
    });
    write("admission_review", "pod_create", pod.to_string().as_bytes());

    let identity = "web.shop.serviceaccount.identity.trellis.cluster.local";
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::new(vec![identity.to_string()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, identity);
    let csr = params.serialize_request(&key).expect("csr");
    write("csr", "proxy_csr", csr.der());

    proto(
        "update_add",
        0,
        &dst::Update {
            update: Some(dst::update::Update::Add(dst::WeightedAddrSet {
                addrs: vec![dst::WeightedAddr {
                    addr: Some(trellis_api::linkerd2_proxy_api::net::TcpAddress {
                        ip: Some(trellis_api::linkerd2_proxy_api::net::IpAddress {
                            ip: Some(trellis_api::linkerd2_proxy_api::net::ip_address::Ip::Ipv4(
                                0xc612_8001,
                            )),
                        }),
                        port: 8080,
                    }),
                    weight: 10_000,
                    ..Default::default()
                }],
                ..Default::default()
            })),
        },
    );
    proto(
        "profile",
        1,
        &dst::DestinationProfile {
            fully_qualified_name: "web.shop.svc.cluster.local".into(),
            ..Default::default()
        },
    );
    proto("server", 2, &inb::Server::default());
    proto(
        "port_spec",
        3,
        &inb::PortSpec {
            workload: "shop:web-1".into(),
            port: 8080,
        },
    );
    proto("outbound", 4, &outb::OutboundPolicy::default());
    proto(
        "traffic_spec",
        5,
        &outb::TrafficSpec {
            source_workload: "shop:web-1".into(),
            target: Some(outb::traffic_spec::Target::Authority(
                "web.shop.svc.cluster.local:80".into(),
            )),
        },
    );
    proto(
        "certify_request",
        6,
        &id::CertifyRequest {
            identity: identity.into(),
            token: b"token".to_vec(),
            certificate_signing_request: csr.der().to_vec(),
        },
    );
    proto("certify_response", 7, &id::CertifyResponse::default());
    http_seeds();
}

/// One HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len())
        .expect("a small frame")
        .to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// Requests for the HTTP entry points: HTTP/1 as apps and peers send them, and HTTP/2 with
/// hand-encoded HPACK (static-table entries, literal authority and headers).
fn http_seeds() {
    const HEADERS: u8 = 1;
    const DATA: u8 = 0;
    const SETTINGS: u8 = 4;
    const END_STREAM: u8 = 1;
    const END_HEADERS: u8 = 4;
    let http1: [(&str, &[u8]); 5] = [
        ("get", b"GET /books HTTP/1.1\r\nHost: web.shop\r\n\r\n"),
        (
            "post_chunked",
            b"POST /orders HTTP/1.1\r\nHost: web.shop\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "upgrade",
            b"GET /ws HTTP/1.1\r\nHost: web.shop\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
        (
            "pipelined",
            b"GET /a HTTP/1.1\r\nHost: web.shop\r\n\r\nPUT /b HTTP/1.1\r\nHost: web.shop\r\nContent-Length: 3\r\n\r\nabc",
        ),
        (
            "l5d_headers",
            b"GET /x HTTP/1.1\r\nHost: web.shop\r\nl5d-dst-override: web.shop.svc.cluster.local:80\r\nl5d-client-id: a.b\r\n\r\n",
        ),
    ];
    // :method GET, :scheme http, :path /, :authority "web" (literal, indexed name 1).
    let get = [0x82, 0x86, 0x84, 0x41, 3, b'w', b'e', b'b'];
    // :method POST, and l5d-orig-proto: HTTP/1.1 as a literal header.
    let mut post = vec![0x83, 0x86, 0x84, 0x41, 3, b'w', b'e', b'b', 0x40, 14];
    post.extend(b"l5d-orig-proto");
    post.push(8);
    post.extend(b"HTTP/1.1");
    let mut h2_get = h2_preface();
    h2_get.extend(h2_frame(SETTINGS, 0, 0, &[]));
    h2_get.extend(h2_frame(HEADERS, END_STREAM | END_HEADERS, 1, &get));
    let mut h2_post = h2_preface();
    h2_post.extend(h2_frame(SETTINGS, 0, 0, &[]));
    h2_post.extend(h2_frame(HEADERS, END_HEADERS, 1, &post));
    h2_post.extend(h2_frame(DATA, END_STREAM, 1, b"hello"));
    let all: Vec<(&str, Vec<u8>)> = http1
        .iter()
        .map(|(name, bytes)| (*name, bytes.to_vec()))
        .chain([("h2_get", h2_get), ("h2_post", h2_post)])
        .collect();
    for (name, bytes) in &all {
        write("http_inbound", name, bytes);
        // The outbound target's first byte picks the endpoint's protocol hint.
        for (hint, flag) in [("plain", 0u8), ("h2", 1)] {
            let mut seed = vec![flag];
            seed.extend(bytes);
            write("http_outbound", &format!("{name}_{hint}"), &seed);
        }
    }
}

fn h2_preface() -> Vec<u8> {
    trellis_fuzz::http::H2_PREFACE.to_vec()
}
