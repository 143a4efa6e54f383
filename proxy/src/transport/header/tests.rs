use super::*;

#[tokio::test]
async fn headers_roundtrip() {
    for header in [
        Header {
            port: 8080,
            name: None,
            protocol: None,
        },
        Header {
            port: 1,
            name: Some("web.shop.svc.cluster.local".into()),
            protocol: Some(SessionProtocol::Http1),
        },
        Header {
            port: 65535,
            name: None,
            protocol: Some(SessionProtocol::Http2),
        },
    ] {
        let mut buf = Vec::new();
        header.write(&mut buf).await.unwrap();
        assert!(buf.starts_with(PREFACE));
        let read = Header::read(&mut buf.as_slice()).await.unwrap();
        assert_eq!(read, header);
    }
}

#[test]
fn known_encoding_and_bad_input() {
    // port 4143, http2: field 1 varint, field 3 { field 2 {} }.
    let h = Header {
        port: 4143,
        name: None,
        protocol: Some(SessionProtocol::Http2),
    };
    assert_eq!(
        h.encode_message(),
        vec![0x08, 0xaf, 0x20, 0x1a, 0x02, 0x12, 0x00]
    );
    assert!(Header::decode_message(&[]).is_err());
    assert!(Header::decode_message(&[0x08, 0xff, 0xff, 0x04]).is_err());
    assert!(Header::decode_message(&[0x12, 0x05, b'a']).is_err());
}
