//! Which node should run which camera: weighted rendezvous hashing
//! (highest random weight). Every node scores every camera from a hash of
//! the two names alone, and the camera belongs to the best score, so every
//! node reaches the same answer without talking to the others; a node's
//! share follows its declared capacity, and when a node joins or leaves
//! only the cameras that go to it or came from it move.
//!
//! The score of node `n` for camera `c` is `-capacity(n) / ln(u(c, n))`,
//! `u` the hash taken to (0, 1): the weighted form of Thaler and Ravishankar
//! (1996) as Resch ("Weighted rendezvous hashing") gives it, whose shares
//! are exactly proportional to the weights.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

/// A live node and what it declared it can take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// Cameras it can run, relative to the others (at least 1).
    pub capacity: u32,
    /// Cameras it could not start lately: placed as if it were not there.
    pub refused: BTreeSet<String>,
}

/// The hash of `camera` and `node` taken to (0, 1), the same on every
/// machine and in every version.
fn unit(camera: &str, node: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(camera.as_bytes());
    h.update([0]);
    h.update(node.as_bytes());
    let d = h.finalize();
    let mut top = [0u8; 8];
    top.copy_from_slice(&d[..8]);
    // 53 bits, and half a step in: never 0, never 1.
    ((u64::from_be_bytes(top) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// The node `camera` belongs on, of `nodes` but those that refused it;
/// none without such nodes.
pub fn owner<'a>(camera: &str, nodes: &'a [Node]) -> Option<&'a Node> {
    nodes
        .iter()
        .filter(|n| !n.refused.contains(camera))
        .map(|n| {
            (
                -f64::from(n.capacity.max(1)) / unit(camera, &n.name).ln(),
                n,
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.name.cmp(&a.1.name)))
        .map(|(_, n)| n)
}

/// What a node should do about the cameras, as the whole cluster sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Cameras no one holds, with the node that should take them.
    pub start: Vec<(String, String)>,
    /// Cameras held by a live node that is not their owner: (camera, from,
    /// to), at most `max_moves` of them, the rest left for later rounds.
    pub moves: Vec<(String, String, String)>,
    /// Cameras held by a node that is no longer live: taken over once
    /// their lease runs out.
    pub orphaned: Vec<String>,
    /// Cameras held but no longer wanted: their holder lets them go.
    pub unwanted: Vec<(String, String)>,
}

/// The plan for `cameras` (the wanted set), held as `holders` says
/// (camera → node), over the live `nodes`.
pub fn plan(
    cameras: &[String],
    holders: &BTreeMap<String, String>,
    nodes: &[Node],
    max_moves: usize,
) -> Plan {
    let mut p = Plan::default();
    for camera in cameras {
        let Some(owner) = owner(camera, nodes) else {
            continue;
        };
        match holders.get(camera) {
            None => p.start.push((camera.clone(), owner.name.clone())),
            Some(h) if !nodes.iter().any(|n| &n.name == h) => p.orphaned.push(camera.clone()),
            Some(h) if *h != owner.name && p.moves.len() < max_moves => {
                p.moves
                    .push((camera.clone(), h.clone(), owner.name.clone()));
            }
            Some(_) => {}
        }
    }
    for (camera, node) in holders {
        if !cameras.contains(camera) {
            p.unwanted.push((camera.clone(), node.clone()));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(spec: &[(&str, u32)]) -> Vec<Node> {
        spec.iter()
            .map(|(n, c)| Node {
                name: (*n).into(),
                capacity: *c,
                ..Node::default()
            })
            .collect()
    }

    fn cameras(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("cam{i:03}")).collect()
    }

    fn shares(cams: &[String], ns: &[Node]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for c in cams {
            *out.entry(owner(c, ns).expect("an owner").name.clone())
                .or_default() += 1;
        }
        out
    }

    #[test]
    fn shares_follow_capacity() {
        let ns = nodes(&[("a", 1), ("b", 1), ("c", 2)]);
        let s = shares(&cameras(4000), &ns);
        // Expected 1000, 1000, 2000: within 10 %.
        assert!((900..=1100).contains(&s["a"]), "{s:?}");
        assert!((900..=1100).contains(&s["b"]), "{s:?}");
        assert!((1800..=2200).contains(&s["c"]), "{s:?}");
    }

    #[test]
    fn the_answer_is_fixed_by_the_names() {
        let ns = nodes(&[("node-1", 1), ("node-2", 1), ("node-3", 1)]);
        // Not the order the nodes are listed in.
        let mut reversed = ns.clone();
        reversed.reverse();
        for c in cameras(50) {
            assert_eq!(owner(&c, &ns), owner(&c, &reversed));
        }
        assert!(owner("cam", &[]).is_none());
    }

    #[test]
    fn a_plan_starts_the_unheld_moves_a_few_and_waits_for_the_orphaned() {
        let ns = nodes(&[("a", 1), ("b", 1)]);
        let cams = cameras(20);
        let mut holders = BTreeMap::new();
        // Everything on a, one on a node that died, one no longer wanted.
        for c in &cams[..18] {
            holders.insert(c.clone(), "a".to_string());
        }
        holders.insert(cams[18].clone(), "gone".to_string());
        holders.insert("old".to_string(), "b".to_string());
        let p = plan(&cams, &holders, &ns, 2);
        assert_eq!(p.start.len(), 1);
        assert_eq!(p.start[0].0, cams[19]);
        assert_eq!(p.orphaned, [cams[18].clone()]);
        assert_eq!(p.unwanted, [("old".to_string(), "b".to_string())]);
        assert_eq!(p.moves.len(), 2, "at most max_moves");
        for (c, from, to) in &p.moves {
            assert_eq!(from, "a");
            assert_eq!(to, "b");
            assert_eq!(owner(c, &ns).map(|n| n.name.as_str()), Some("b"));
        }
    }

    #[test]
    fn a_camera_a_node_refused_goes_to_the_next_best_and_no_other_moves() {
        let ns = nodes(&[("a", 1), ("b", 1), ("c", 1)]);
        let cams = cameras(30);
        let on_b: Vec<&String> = cams
            .iter()
            .filter(|c| owner(c, &ns).is_some_and(|n| n.name == "b"))
            .collect();
        assert!(on_b.len() > 2);
        let refused = on_b[0].clone();
        let mut with_refusal = ns.clone();
        with_refusal[1].refused.insert(refused.clone());
        for c in &cams {
            let before = owner(c, &ns).map(|n| n.name.clone());
            let after = owner(c, &with_refusal).map(|n| n.name.clone());
            if *c == refused {
                assert_ne!(after.as_deref(), Some("b"));
                assert!(after.is_some());
            } else {
                assert_eq!(before, after, "{c} stays where it was");
            }
        }
        // Held by b, which then refused it (it let it go): started elsewhere.
        let p = plan(&cams, &BTreeMap::new(), &with_refusal, 2);
        let to = p.start.iter().find(|(c, _)| *c == refused).map(|(_, n)| n);
        assert!(to.is_some_and(|n| n != "b"), "{to:?}");
        // Refused by every node: no one is told to start it.
        for n in &mut with_refusal {
            n.refused.insert(refused.clone());
        }
        assert!(owner(&refused, &with_refusal).is_none());
        let p = plan(&cams, &BTreeMap::new(), &with_refusal, 2);
        assert!(p.start.iter().all(|(c, _)| *c != refused));
    }

    proptest! {
        /// A node joining takes cameras only for itself: no camera moves
        /// between the nodes that were there.
        #[test]
        fn a_join_moves_cameras_only_to_the_new_node(
            n in 1usize..6, caps in proptest::collection::vec(1u32..4, 6), count in 1usize..200,
        ) {
            let before: Vec<Node> = (0..n)
                .map(|i| Node { name: format!("n{i}"), capacity: caps[i], ..Node::default() })
                .collect();
            let mut after = before.clone();
            after.push(Node { name: "new".into(), capacity: caps[5], ..Node::default() });
            for c in cameras(count) {
                let was = owner(&c, &before).map(|x| x.name.clone());
                let now = owner(&c, &after).map(|x| x.name.clone());
                prop_assert!(now == was || now.as_deref() == Some("new"));
            }
        }

        /// A node leaving gives away only its own cameras.
        #[test]
        fn a_leave_moves_only_the_leavers_cameras(
            n in 2usize..7, gone in 0usize..7, count in 1usize..200,
        ) {
            let gone = gone % n;
            let before: Vec<Node> = (0..n)
                .map(|i| Node { name: format!("n{i}"), capacity: 1, ..Node::default() })
                .collect();
            let mut after = before.clone();
            let left = after.remove(gone);
            for c in cameras(count) {
                let was = owner(&c, &before).map(|x| x.name.clone());
                let now = owner(&c, &after).map(|x| x.name.clone());
                prop_assert!(now == was || was.as_deref() == Some(left.name.as_str()));
            }
        }
    }
}
