use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use trellis_api::destination::{Endpoint, Update};

use super::diff;

fn set(addrs: &[&str]) -> BTreeMap<SocketAddr, Endpoint> {
    addrs
        .iter()
        .map(|a| {
            let addr: SocketAddr = a.parse().unwrap();
            (addr, Endpoint::plain(addr))
        })
        .collect()
}

#[test]
fn first_message_is_the_whole_set_or_no_endpoints() {
    let empty = BTreeMap::new();
    let updates = diff(&empty, &Some(Arc::new(set(&["198.18.128.1:80"]))), true);
    assert!(matches!(&updates[..], [Update::Add { endpoints, .. }] if endpoints.len() == 1));
    let updates = diff(&empty, &Some(Arc::new(BTreeMap::new())), true);
    assert_eq!(updates, vec![Update::NoEndpoints { exists: true }]);
    let updates = diff(&empty, &None, true);
    assert_eq!(updates, vec![Update::NoEndpoints { exists: false }]);
}

#[test]
fn changes_become_adds_and_removes() {
    let prev = set(&["198.18.128.1:80", "198.18.128.2:80"]);
    let next = Some(Arc::new(set(&["198.18.128.2:80", "198.18.128.3:80"])));
    let updates = diff(&prev, &next, false);
    assert_eq!(updates.len(), 2);
    assert_eq!(
        updates[0],
        Update::Remove(vec!["198.18.128.1:80".parse().unwrap()])
    );
    assert!(matches!(&updates[1], Update::Add { endpoints, .. }
        if endpoints.len() == 1 && endpoints[0].addr == "198.18.128.3:80".parse::<SocketAddr>().unwrap()));
    assert!(diff(&prev, &Some(Arc::new(prev.clone())), false).is_empty());
    assert_eq!(
        diff(&prev, &Some(Arc::new(BTreeMap::new())), false),
        vec![Update::NoEndpoints { exists: true }]
    );
}
