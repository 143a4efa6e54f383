//! The `trellis-proxy` binary: starts from `TRELLIS_PROXY_*`, serves admin, drains on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use trellis_proxy::{
    app::{config, runtime},
    test_util,
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut rsp = String::new();
    stream.read_to_string(&mut rsp).ok()?;
    rsp.split_whitespace().nth(1)?.parse().ok()
}

/// A running `trellis-proxy` with no control plane behind it, and its scratch directory.
struct Proxy {
    child: Child,
    admin: u16,
    dir: PathBuf,
}

/// Starts the binary with `extra` variables and waits for admin `/live`.
fn start(name: &str, extra: &[(&str, &str)]) -> Proxy {
    let dir = std::env::temp_dir().join(format!("trellis-proxy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "token").unwrap();
    let pki = test_util::TestPki::new();
    let admin = free_port();
    let mut env = test_util::mk_env(&pki.anchor_pem);
    for (k, v) in [
        (config::ENV_ADMIN_LISTEN_ADDR, format!("127.0.0.1:{admin}")),
        (config::ENV_INBOUND_LISTEN_ADDR, "127.0.0.1:0".into()),
        (config::ENV_OUTBOUND_LISTEN_ADDR, "127.0.0.1:0".into()),
        // Nothing listens on the discard port: the proxy stays unready but serves.
        (config::ENV_IDENTITY_SVC_ADDR, "127.0.0.1:9".into()),
        (config::ENV_DESTINATION_SVC_ADDR, "127.0.0.1:9".into()),
        (config::ENV_POLICY_SVC_ADDR, "127.0.0.1:9".into()),
        (
            config::ENV_IDENTITY_DIR,
            dir.join("id").display().to_string(),
        ),
        (
            config::ENV_IDENTITY_TOKEN_FILE,
            dir.join("token").display().to_string(),
        ),
    ] {
        env.insert(k.to_string(), v);
    }
    for (k, v) in extra {
        env.insert((*k).to_string(), (*v).to_string());
    }
    let child = Command::new(env!("CARGO_BIN_EXE_trellis-proxy"))
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut live = None;
    for _ in 0..100 {
        live = get(admin, "/live");
        if live.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(live, Some(200), "admin /live");
    Proxy { child, admin, dir }
}

/// Names of the process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let comm = task.unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap().trim().to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn binary_serves_admin_and_drains_on_sigterm() {
    let Proxy {
        mut child,
        admin,
        dir,
    } = start("binary", &[]);
    assert_eq!(
        get(admin, "/ready"),
        Some(503),
        "not ready without a certificate"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(dir.join("id").join("key.p8").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn control_work_has_its_own_thread_and_cores_set_the_data_workers() {
    for (cores, workers) in [(None, 0), (Some("2"), 2)] {
        let extra: Vec<(&str, &str)> = cores.map(|c| (config::ENV_CORES, c)).into_iter().collect();
        let mut proxy = start(&format!("cores-{}", cores.unwrap_or("default")), &extra);
        let names = thread_names(proxy.child.id());
        let count = |name: &str| names.iter().filter(|n| *n == name).count();
        assert_eq!(count(runtime::CONTROL_THREAD_NAME), 1, "{names:?}");
        // One core: the main thread is the only data worker (a single-threaded runtime).
        assert_eq!(count(runtime::WORKER_THREAD_NAME), workers, "{names:?}");
        proxy.child.kill().unwrap();
        proxy.child.wait().unwrap();
        let _ = std::fs::remove_dir_all(&proxy.dir);
    }
}

#[test]
fn binary_names_the_bad_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-proxy"))
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(config::ENV_DESTINATION_SVC_ADDR),
        "{stderr}"
    );
}
