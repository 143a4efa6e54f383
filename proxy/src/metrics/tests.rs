use super::*;

/// Asserts that the exposition `text` has each of `lines` as a whole line.
fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "{line:?} missing from:\n{text}"
        );
    }
}

#[test]
fn every_family_is_registered_with_its_type_and_help() {
    let metrics = Metrics::new();
    let labels: Labels = vec![("direction".into(), "inbound".into())];
    drop(metrics.tcp.open("src", labels.clone()));
    metrics.http.request(labels.clone()).respond(200, None, "");
    metrics.authz.deny(true, &labels);
    metrics.authz.deny(false, &labels);
    let text = metrics.encode().unwrap();
    for (name, kind, help) in [
        ("tcp_open", "counter", "Connections opened"),
        ("tcp_close", "counter", "Connections closed"),
        (
            "tcp_open_connections",
            "gauge",
            "Connections currently open",
        ),
        ("tcp_read_bytes", "counter", "Bytes read from peers"),
        ("tcp_write_bytes", "counter", "Bytes written to peers"),
        ("request", "counter", "HTTP requests"),
        ("response", "counter", "HTTP responses"),
        (
            "response_latency_ms",
            "histogram",
            "Time from request to response headers, in milliseconds",
        ),
        (
            "inbound_http_authz_deny",
            "counter",
            "HTTP connections and requests refused by inbound policy",
        ),
        (
            "inbound_tcp_authz_deny",
            "counter",
            "Opaque TCP connections refused by inbound policy",
        ),
    ] {
        let (help, kind) = (
            format!("# HELP {name} {help}."),
            format!("# TYPE {name} {kind}"),
        );
        assert_lines(&text, &[&help, &kind]);
    }
    assert_lines(
        &text,
        &[
            // The latency family is made with the contract's buckets, not the default ones.
            "response_latency_ms_bucket{le=\"50000.0\",direction=\"inbound\",status_code=\"200\"} 1",
            "inbound_http_authz_deny_total{direction=\"inbound\"} 1",
        ],
    );
}

#[tokio::test]
async fn counted_io_counts_bytes_each_way() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let metrics = Metrics::new();
    let conn = metrics
        .tcp
        .open("src", vec![("direction".into(), "inbound".into())]);
    let (io, mut peer) = tokio::io::duplex(64);
    let mut io = tcp::counted(io, &conn);
    io.write_all(b"hello").await.unwrap();
    peer.write_all(b"abc").await.unwrap();
    let mut buf = [0; 3];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"abc");
    let text = metrics.encode().unwrap();
    assert_lines(
        &text,
        &[
            "tcp_read_bytes_total{direction=\"inbound\",peer=\"src\"} 3",
            "tcp_write_bytes_total{direction=\"inbound\",peer=\"src\"} 5",
        ],
    );
}

#[test]
fn a_labelled_handle_counts_into_the_same_series_as_fresh_labels() {
    let metrics = Metrics::new();
    let labels: Labels = vec![("direction".into(), "outbound".into())];
    let handle = metrics.http.labelled(labels.clone());
    for _ in 0..3 {
        handle.request().respond(200, None, "");
    }
    handle.request().respond(200, Some(14), "");
    handle.request().respond(0, None, "unreachable");
    handle.request().respond(0, None, "timeout");
    metrics.http.request(labels).respond(200, None, "");
    let text = metrics.encode().unwrap();
    let response = |code: &str, class: &str, grpc: &str, error: &str| {
        format!(
            "response_total{{direction=\"outbound\",status_code=\"{code}\",classification=\"{class}\",grpc_status=\"{grpc}\",error=\"{error}\"}}"
        )
    };
    assert_lines(
        &text,
        &[
            "request_total{direction=\"outbound\"} 7",
            &format!("{} 4", response("200", "success", "", "")),
            &format!("{} 1", response("200", "failure", "14", "")),
            &format!("{} 1", response("", "failure", "", "unreachable")),
            &format!("{} 1", response("", "failure", "", "timeout")),
            "response_latency_ms_count{direction=\"outbound\",status_code=\"200\"} 5",
            "response_latency_ms_count{direction=\"outbound\",status_code=\"\"} 2",
        ],
    );
}
