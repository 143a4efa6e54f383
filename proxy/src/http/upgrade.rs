//! HTTP/1 upgrades (WebSocket, `Upgrade:`) carried through the proxy: both sides' upgraded
//! connections are spliced together once the peer answers `101 Switching Protocols`.

use http::{Request, Response, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Whether `req` asks for an HTTP/1 upgrade (which HTTP/2 cannot carry).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() != Version::HTTP_2 && req.headers().contains_key(header::UPGRADE)
}

/// The client side of `req`'s upgrade, when it asks for one.
pub fn on_request<B>(req: &mut Request<B>) -> Option<OnUpgrade> {
    is_upgrade(req).then(|| hyper::upgrade::on(req))
}

/// When `rsp` switches protocols, spawns a task that copies bytes between the client's
/// upgraded connection and the peer's until both close.
pub fn splice<B>(client: Option<OnUpgrade>, rsp: &mut Response<B>) {
    let Some(client) = client else { return };
    if rsp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let peer = hyper::upgrade::on(rsp);
    tokio::spawn(async move {
        match tokio::try_join!(client, peer) {
            Ok((client, peer)) => {
                let (mut client, mut peer) = (TokioIo::new(client), TokioIo::new(peer));
                if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut peer).await {
                    tracing::debug!(%error, "Upgraded connection ended with an error");
                }
            }
            Err(error) => tracing::debug!(%error, "Upgrade failed"),
        }
    });
}
