//! Network namespaces as pods, for the end-to-end test, the demo and the proxy benchmark.
//!
//! A [`Network`] is a bridge in the root namespace holding [`GATEWAY`] (198.18.0.1/24); each
//! [`PodNs`] is a network namespace on that bridge with one address in 198.18.0.0/24, a
//! default route through the gateway and, when asked, the `trellis-proxy-init` rules. Only one
//! `Network` exists on a machine at a time (a file lock serialises test binaries, the demo and
//! benchmarks); leftovers of a crashed run are removed when the next one starts, and dropping
//! the `Network` removes every namespace, link and process it made, also when a test panics.
//! Needs root, iproute2 and iptables.

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr},
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Arc,
};

use tokio::net::{TcpListener, TcpStream};

/// Address of the bridge in the root namespace; the control plane listens here.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Prefix length of the pod network 198.18.0.0/24.
pub const PREFIX_LEN: u8 = 24;
/// Lock file that keeps two networks from sharing 198.18.0.0/24.
const LOCK_PATH: &str = "/tmp/trellis-netns.lock";
/// Prefix of every namespace name this module creates.
const NS_PREFIX: &str = "trellis-";
/// Prefix of every bridge and veth name this module creates.
const LINK_PREFIX: &str = "trb";

/// Runs `ip` with `args`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) -> String {
    let out = run(Command::new("ip").args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?}: {e} (the network-namespace tests need root, iproute2 and iptables)",
            cmd.get_program()
        )
    });
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The bridge and the pod namespaces on it; dropping it removes them all.
#[derive(Debug)]
pub struct Network {
    bridge: String,
    tag: String,
    pods: Vec<Arc<PodNs>>,
    _lock: File,
}

impl Network {
    /// Waits for the machine-wide lock, removes leftovers of earlier runs and creates the
    /// bridge with [`GATEWAY`].
    pub fn create() -> Self {
        let lock = File::create(LOCK_PATH)
            .unwrap_or_else(|e| panic!("cannot open {LOCK_PATH}: {e} (run the tests as root)"));
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {LOCK_PATH}: {e}"));
        remove_leftovers();
        let tag = unique_tag();
        let bridge = format!("{LINK_PREFIX}-{tag}");
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{GATEWAY}/{PREFIX_LEN}"),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        Self {
            bridge,
            tag,
            pods: Vec::new(),
            _lock: lock,
        }
    }

    /// Adds a namespace called `name` with address `addr` on the bridge.
    pub fn add_pod(&mut self, name: &str, addr: Ipv4Addr) -> Arc<PodNs> {
        let ns = format!("{NS_PREFIX}{}-{name}", self.tag);
        let veth = format!("{LINK_PREFIX}{}-{}", self.tag, self.pods.len());
        ip(&["netns", "add", &ns]);
        let pod = Arc::new(PodNs {
            ns: ns.clone(),
            name: name.to_string(),
            addr,
        });
        // Registered before the rest so that a failure below still removes the namespace.
        self.pods.push(pod.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["link", "set", &veth, "master", &self.bridge, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/{PREFIX_LEN}"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        // Service addresses (198.19.0.0/16) need a route, or connect fails before the
        // outbound redirection sees it.
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &GATEWAY.to_string(),
        ]);
        pod
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for pod in &self.pods {
            let _ = Command::new("ip").args(["netns", "del", &pod.ns]).output();
            let _ = std::fs::remove_dir_all(pod.etc_dir());
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// A tag unique to this network: the process id and a per-process sequence number, both in
/// hex so that `trb<tag>-<pod>` stays within the kernel's 15-byte interface names. The
/// sequence matters: a dropped network's veths outlive `ip netns del` for a moment, so the
/// next network in the same test binary must not reuse their names.
fn unique_tag() -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}n{seq:x}", std::process::id())
}

/// Removes namespaces and links left by a run that did not clean up (its lock is gone).
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        if ns.starts_with(NS_PREFIX) {
            tracing::warn!(%ns, "Removing a network namespace left by an earlier run");
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
    }
    let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split(':').nth(1).map(str::trim) else {
            continue;
        };
        if name.starts_with(&format!("{LINK_PREFIX}-")) {
            tracing::warn!(%name, "Removing a bridge left by an earlier run");
            let _ = Command::new("ip").args(["link", "del", name]).output();
        }
    }
}

/// One pod: a network namespace with one address on the bridge.
#[derive(Debug)]
pub struct PodNs {
    ns: String,
    name: String,
    addr: Ipv4Addr,
}

impl PodNs {
    /// The pod's short name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.ns)
    }

    /// A command that runs `program` inside the namespace, as `uid` (and the same gid) when
    /// given; `ip netns exec` replaces itself, so the child's pid is the program's.
    pub fn command(&self, program: &Path, uid: Option<u32>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]);
        if let Some(uid) = uid {
            cmd.args([
                "setpriv",
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "--",
            ]);
        }
        cmd.arg(program);
        cmd
    }

    /// Runs `program args` inside the namespace and returns its output; panics on failure.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]).args(args);
        run(&mut cmd)
    }

    /// Installs the proxy's iptables redirection with `trellis-proxy-init` at `binary`.
    pub fn install_redirect(&self, binary: &Path, args: &[&str]) {
        let mut cmd = self.command(binary, None);
        cmd.args(args);
        run(&mut cmd);
    }

    /// Makes `name` (and its absolute form `name.`) resolve to `addr` for programs started
    /// in this namespace: `ip netns exec` mounts `/etc/netns/<ns>/hosts` over `/etc/hosts`.
    /// The namespace's resolver points at loopback, so no DNS query leaves it.
    pub fn add_host(&self, name: &str, addr: Ipv4Addr) {
        let dir = self.etc_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        let path = dir.join("hosts");
        let mut hosts =
            std::fs::read_to_string(&path).unwrap_or_else(|_| "127.0.0.1 localhost\n".to_string());
        hosts.push_str(&format!("{addr} {name} {name}.\n"));
        std::fs::write(path, hosts).unwrap();
    }

    /// Runs `f` on a fresh thread that has entered this namespace; sockets made there
    /// stay in the namespace wherever they are used afterwards.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = Path::new("/run/netns").join(&self.ns);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Connects to `addr` from inside the namespace, as an app in the pod would (as root, so
    /// the outbound redirection applies).
    pub async fn connect(self: &Arc<Self>, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let pod = self.clone();
        let stream = tokio::task::spawn_blocking(move || {
            pod.enter(move || {
                let s =
                    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
                s.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(s)
            })
        })
        .await
        .unwrap()?;
        stream.set_nodelay(true)?;
        TcpStream::from_std(stream)
    }

    /// Listens on `0.0.0.0:port` inside the namespace, as an app in the pod would.
    pub fn listen(&self, port: u16) -> TcpListener {
        let listener = self.enter(move || {
            let l = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
                .unwrap_or_else(|e| panic!("bind :{port}: {e}"));
            l.set_nonblocking(true).unwrap();
            l
        });
        TcpListener::from_std(listener).unwrap()
    }
}

/// A process started in a namespace; killed and reaped when dropped.
#[derive(Debug)]
pub struct NsProcess {
    child: Child,
    name: String,
}

impl NsProcess {
    /// Starts `cmd` with its output appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Self {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self {
            child,
            name: name.to_string(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, signal);
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// Waits up to `timeout` for it to exit; its status, or `None` while it still runs.
    pub async fn exited_within(
        &mut self,
        timeout: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops it with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if self.running() {
            tracing::debug!(name = %self.name, pid = self.pid(), "Stopping");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
