//! The server app: nginx with one process, no access log and a 1 KiB body on `/`, pinned to
//! CPU 1 inside a namespace.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use trellis_tests::netns::{NsProcess, PodNs};

/// The CPU of the server and the proxies; the generator gets the other one.
pub(crate) const SERVER_CPU: &str = "1";
/// The port nginx listens on.
pub(crate) const PORT: u16 = 80;
/// Size of the body served on `/`.
pub(crate) const BODY_BYTES: usize = 1024;
/// Where Debian's `nginx-light` installs the binary.
const BINARY: &str = "/usr/sbin/nginx";

/// `nginx -v`, or `None` when it is not installed.
pub(crate) fn version() -> Option<String> {
    let out = std::process::Command::new(BINARY).arg("-v").output().ok()?;
    // nginx prints its version on stderr.
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stderr).trim().to_string())
}

/// The configuration: one process that serves (no master), keep-alive connections that
/// never hit a request limit, every path under `dir`.
fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    default_type text/plain;
    server {{
        listen {PORT} default_server;
        root {d}/www;
        index body.txt;
    }}
}}
"
    )
}

/// Writes the configuration and the body into `dir`, starts nginx in `pod` on CPU 1 and
/// waits until it answers on `pod`'s loopback.
pub(crate) async fn start(pod: &Arc<PodNs>, dir: &Path) -> NsProcess {
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(dir.join("www/body.txt"), vec![b'x'; BODY_BYTES]).unwrap();
    let conf: PathBuf = dir.join("nginx.conf");
    std::fs::write(&conf, config(dir)).unwrap();
    let mut cmd = pod.command(Path::new("taskset"), None);
    cmd.args(["-c", SERVER_CPU, BINARY, "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"));
    let process = NsProcess::spawn(
        &format!("nginx {}", pod.name()),
        cmd,
        &dir.join("nginx.log"),
    );
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
    for _ in 0..100 {
        if pod.connect(local).await.is_ok() {
            return process;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "nginx in {} does not answer on {local}; see {}",
        pod.name(),
        dir.join("error.log").display()
    );
}
