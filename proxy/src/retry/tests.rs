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
