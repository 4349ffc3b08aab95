//! The cluster's buckets on a real nats-server with JetStream: the wanted
//! cameras, heartbeats that lapse, and leases that only one node holds at a
//! time, renewed at their revision and free one lease period after their
//! holder stops.

use std::time::{Duration, Instant};

use vigil::cluster::buckets::{Beat, Buckets};

use crate::brokers::NatsServer;

const LEASE: Duration = Duration::from_secs(2);

async fn open(url: &str) -> Buckets {
    let client = async_nats::connect(url).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    Buckets::open(&js, LEASE, LEASE, 1)
        .await
        .expect("the buckets")
}

/// Polls `take` until it succeeds: how long that took.
async fn taken_after(b: &Buckets, camera: &str, node: &str, limit: Duration) -> (u64, Duration) {
    let started = Instant::now();
    loop {
        if let Some(rev) = b.take(camera, node).await.expect("asked") {
            return (rev, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{camera} still held after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn leases_are_held_by_one_node_renewed_at_their_revision_and_run_out() {
    let nats = NatsServer::start(&[]);
    let url = nats.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Two nodes, each with its own connection.
        let a = open(&url).await;
        let b = open(&url).await;

        // The wanted set, written by one, read by the other.
        a.want(
            "cam1",
            &serde_json::json!({"name": "cam1", "uri": "rtsp://x/1"}),
        )
        .await
        .expect("wanted");
        a.want(
            "cam2",
            &serde_json::json!({"name": "cam2", "uri": "rtsp://x/2"}),
        )
        .await
        .expect("wanted");
        let cams = b.cameras().await.expect("read");
        assert_eq!(cams.keys().collect::<Vec<_>>(), ["cam1", "cam2"]);
        assert_eq!(cams["cam2"]["uri"], "rtsp://x/2");
        assert!(b.unwant("cam2").await.expect("deleted"));
        assert!(!b.unwant("cam2").await.expect("asked"));
        assert_eq!(a.cameras().await.expect("read").len(), 1);

        // One holder.
        let rev = a.take("cam1", "a").await.expect("asked").expect("free");
        assert_eq!(b.take("cam1", "b").await.expect("asked"), None);
        let leases = b.leases().await.expect("read");
        assert_eq!(leases["cam1"].node, "a");
        assert_eq!(leases["cam1"].revision, rev);

        // Renewed at its revision, and only there: renewing keeps it past
        // a lease period.
        let mut held = rev;
        let renewing = Instant::now();
        while renewing.elapsed() < LEASE * 2 {
            held = a
                .renew("cam1", "a", held)
                .await
                .expect("asked")
                .expect("still held");
            tokio::time::sleep(LEASE / 3).await;
        }
        assert_eq!(b.take("cam1", "b").await.expect("asked"), None);
        assert_eq!(
            b.renew("cam1", "b", rev).await.expect("asked"),
            None,
            "a stale revision"
        );

        // Its holder stops renewing: free one lease period later, not before.
        let stopped = Instant::now();
        let (taken, _) = taken_after(&b, "cam1", "b", LEASE * 4).await;
        let after = stopped.elapsed();
        assert!(
            after >= LEASE - LEASE / 3,
            "free after {after:?}, before the lease ran out"
        );
        assert!(
            after <= LEASE + Duration::from_secs(3),
            "free only after {after:?}"
        );
        // The old holder's renewal fails: it knows it lost the camera.
        assert_eq!(a.renew("cam1", "a", held).await.expect("asked"), None);
        assert_eq!(a.leases().await.expect("read")["cam1"].node, "b");

        // Handed on at its revision, then released at once.
        let to_a = b
            .hand_on("cam1", "a", taken)
            .await
            .expect("asked")
            .expect("handed on");
        assert_eq!(b.leases().await.expect("read")["cam1"].node, "a");
        assert!(
            !b.release("cam1", taken).await.expect("asked"),
            "b no longer holds it"
        );
        assert!(a.release("cam1", to_a).await.expect("released"));
        assert!(b.leases().await.expect("read").is_empty());
        let (_, waited) = taken_after(&b, "cam1", "b", LEASE).await;
        assert!(
            waited < LEASE / 2,
            "free at once after a release: {waited:?}"
        );

        // Heartbeats lapse by themselves.
        a.beat(
            "a",
            &Beat {
                capacity: 2,
                api: None,
            },
        )
        .await
        .expect("beat");
        b.beat(
            "b",
            &Beat {
                capacity: 1,
                api: Some("127.0.0.1:1".into()),
            },
        )
        .await
        .expect("beat");
        let nodes = a.nodes().await.expect("read");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes["a"].capacity, 2);
        let lapse = Instant::now();
        loop {
            b.beat(
                "b",
                &Beat {
                    capacity: 1,
                    api: None,
                },
            )
            .await
            .expect("beat");
            let nodes = b.nodes().await.expect("read");
            if !nodes.contains_key("a") {
                assert!(nodes.contains_key("b"), "b beats on");
                break;
            }
            assert!(
                lapse.elapsed() < LEASE + Duration::from_secs(3),
                "a's beat lapses"
            );
            tokio::time::sleep(LEASE / 4).await;
        }
    });
}
