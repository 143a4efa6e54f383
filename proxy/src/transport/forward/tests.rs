use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

use super::*;
use crate::metrics::Metrics;

fn labels() -> Labels {
    vec![("direction".to_string(), "outbound".to_string())]
}

#[tokio::test]
async fn forwards_both_ways_and_counts_both_peers() {
    let metrics = Metrics::new();
    let (client, mut app) = duplex(64);
    let (server, mut target) = duplex(64);
    let task = tokio::spawn({
        let tcp = metrics.tcp.clone();
        async move {
            let connect = async { Ok::<_, std::io::Error>(server) };
            forward(client, &tcp, labels(), connect).await;
        }
    });
    app.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    target.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    target.write_all(b"pong!").await.unwrap();
    let mut buf = [0u8; 5];
    app.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong!");
    drop((app, target));
    task.await.unwrap();

    let text = metrics.encode().unwrap();
    for peer in ["src", "dst"] {
        let open = format!("tcp_open_total{{direction=\"outbound\",peer=\"{peer}\"}} 1");
        let close = format!("tcp_close_total{{direction=\"outbound\",peer=\"{peer}\"");
        assert!(text.contains(&open), "{open} missing from\n{text}");
        assert!(text.contains(&close), "{close} missing from\n{text}");
    }
}

#[tokio::test]
async fn an_unreachable_target_counts_only_the_client() {
    let metrics = Metrics::new();
    let (client, _app) = duplex(64);
    let connect = async { Err::<tokio::io::DuplexStream, _>("refused") };
    forward(client, &metrics.tcp, labels(), connect).await;
    let text = metrics.encode().unwrap();
    assert!(text.contains("tcp_open_total{direction=\"outbound\",peer=\"src\"} 1"));
    assert!(!text.contains("peer=\"dst\""), "{text}");
}
