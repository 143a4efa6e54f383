use std::time::Duration;

use super::*;

#[tokio::test]
async fn accept_yields_connections_until_the_drain_starts() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let drain = Drain::new();
    let client = TcpStream::connect(addr).await.unwrap();
    let (stream, peer) = accept(&listener, &drain).await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(stream.peer_addr().unwrap(), client.local_addr().unwrap());

    assert!(drain.drain(Duration::ZERO).await);
    assert!(accept(&listener, &drain).await.is_none());
}
