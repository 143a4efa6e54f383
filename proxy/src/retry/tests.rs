use super::*;

#[test]
fn doubles_up_to_the_cap_and_resets() {
    let mut backoff = Backoff::default();
    let delays: Vec<_> = (0..9).map(|_| backoff.next_delay()).collect();
    let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
    backoff.reset();
    assert_eq!(backoff.next_delay(), BACKOFF_MIN);
}

type Script = Vec<Result<Vec<Result<u32, Status>>, Status>>;

/// Follows a scripted series of subscriptions; returns the updates seen (with their
/// first-of-subscription flag), the end statuses, and the paused clock's time at each open.
async fn run(
    script: Script,
    on_end: impl FnMut(&Status) -> Next,
) -> (Vec<(Result<u8, ()>, bool)>, Vec<Duration>) {
    let start = tokio::time::Instant::now();
    let mut script = script.into_iter();
    let mut opened = Vec::new();
    let mut updates = Vec::new();
    let open = || {
        opened.push(start.elapsed());
        let next = script
            .next()
            .unwrap_or_else(|| Err(Status::invalid_argument("done")));
        async move { next.map(futures::stream::iter) }
    };
    let on_update = |msg: Result<u8, _>, first| updates.push((msg.map_err(|_| ()), first));
    follow("test", open, on_update, on_end).await;
    (updates, opened)
}

#[tokio::test(start_paused = true)]
async fn follows_streams_converting_and_backing_off() {
    let script: Script = vec![
        Err(Status::unavailable("down")),
        Err(Status::unavailable("down")),
        Ok(vec![Ok(1), Ok(300)]),
        Ok(vec![Ok(2), Err(Status::internal("reset"))]),
    ];
    let stop = |s: &Status| match s.code() {
        tonic::Code::InvalidArgument => Next::Stop,
        _ => Next::Retry,
    };
    let (updates, opened) = run(script, stop).await;
    assert_eq!(
        updates,
        [(Ok(1), true), (Err(()), false), (Ok(2), true)],
        "300 does not fit a u8; each subscription's first message is marked"
    );
    let ms: Vec<u128> = opened.iter().map(Duration::as_millis).collect();
    // 100 and 200 after the failures; a message resets the backoff to 100 each time.
    assert_eq!(ms, [0, 100, 300, 400, 500]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_leaves_the_backoff_alone() {
    let script: Script = vec![
        Err(Status::unavailable("down")),
        Err(Status::failed_precondition("not yet")),
        Err(Status::unavailable("down")),
    ];
    let on_end = |s: &Status| match s.code() {
        tonic::Code::FailedPrecondition => Next::RetryAfter(Duration::from_secs(30)),
        tonic::Code::InvalidArgument => Next::Stop,
        _ => Next::Retry,
    };
    let (updates, opened) = run(script, on_end).await;
    assert!(updates.is_empty());
    let ms: Vec<u128> = opened.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [0, 100, 30_100, 30_300]);
}

#[test]
fn only_refusals_of_the_request_are_rejections() {
    for (status, rejected) in [
        (Status::invalid_argument("bad target"), true),
        (Status::failed_precondition("opted out"), true),
        (Status::not_found("no policy"), false),
        (Status::unavailable("down"), false),
        (Status::ok("stream ended"), false),
    ] {
        assert_eq!(is_rejection(&status), rejected, "{status}");
    }
}

#[tokio::test]
async fn once_certified_waits_for_the_first_certificate() {
    assert_eq!(once_certified(None, async { 7 }).await, 7);

    let name = "web.shop.serviceaccount.identity.trellis.cluster.local";
    let store = tls::Store::new(name.to_string());
    let mut watch = tokio::spawn(once_certified(Some(store.clone()), async { 7 }));
    let early = tokio::time::timeout(Duration::from_millis(50), &mut watch).await;
    assert!(early.is_err(), "the watch must wait for a certificate");
    let leaf = crate::test_util::TestPki::new().issue(name);
    store.set(leaf.chain.clone(), leaf.key()).unwrap();
    assert_eq!(watch.await.unwrap(), 7);
}

#[tokio::test]
async fn reopen_calls_on_fresh_clones_and_yields_the_stream() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut open = reopen(calls.clone(), "req".to_string(), |calls, req| async move {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(tonic::Response::new(format!("{req} {n}")))
    });
    assert_eq!(open().await.unwrap(), "req 0");
    assert_eq!(open().await.unwrap(), "req 1");
}

#[test]
fn send_if_changed_wakes_receivers_only_on_a_new_value() {
    let (tx, mut rx) = watch::channel(1);
    send_if_changed(&tx, 1);
    assert!(!rx.has_changed().unwrap());
    send_if_changed(&tx, 2);
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 2);
}

#[test]
fn mark_unavailable_moves_only_a_pending_watch() {
    let (tx, rx) = watch::channel("pending");
    mark_unavailable(&tx, &"pending", "unavailable");
    assert_eq!(*rx.borrow(), "unavailable");
    tx.send_replace("known");
    mark_unavailable(&tx, &"pending", "unavailable");
    assert_eq!(*rx.borrow(), "known");
}
