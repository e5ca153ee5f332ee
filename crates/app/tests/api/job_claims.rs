//! Claim order: by priority, then age; on PostgreSQL each claim walks on from where the
//! worker's last claim ended (past the index entries claimed jobs leave behind), and a walk
//! returns to the head at least every poll interval.

use chrono::{TimeDelta, Utc};

use crate::{helpers::*, jobs::welcome_job};

#[tokio::test]
async fn claims_walk_on_from_the_last_position_and_a_new_walk_starts_at_the_head() {
    // No workers: the test claims by hand.
    let app = TestApp::builder().api_only().spawn().await;
    let store = queue_of(&app).await;
    let queues = vec!["mail".to_owned()];
    let claim = |after| {
        let store = store.clone();
        let queues = queues.clone();
        async move {
            let now = Utc::now();
            store
                .claim(
                    &queues,
                    "test-worker",
                    3,
                    now + TimeDelta::seconds(30),
                    now,
                    after,
                )
                .await
                .expect("claim")
        }
    };
    let mut ordinary = Vec::new();
    for index in 0..6 {
        let job = welcome_job(index);
        ordinary.push(job.id);
        assert!(store.enqueue(&job).await.expect("enqueue"));
    }

    let (first, position) = claim(None).await;
    let mut urgent = welcome_job(99);
    urgent.priority = 9;
    assert!(store.enqueue(&urgent).await.expect("enqueue"));
    let (second, _) = claim(position.as_ref()).await;
    let (third, _) = claim(None).await;

    // A claim's rows come back in no particular order: compare them sorted (UUIDv7: by age).
    let ids = |jobs: &[outgrow_platform::jobs::Claimed]| {
        let mut ids: Vec<_> = jobs.iter().map(|job| job.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&first), ordinary[..3], "the oldest first");
    if scaled() {
        // Walking on from the position: the next three by age, the urgent job not yet…
        assert_eq!(ids(&second), ordinary[3..], "walked on");
        // …and first in line once a walk starts at the head again.
        assert_eq!(ids(&third), [urgent.id]);
    } else {
        // SQLite claims from the head every time: the urgent job at once.
        let mut expected = vec![ordinary[3], ordinary[4], urgent.id];
        expected.sort();
        assert_eq!(ids(&second), expected);
        assert_eq!(ids(&third), ordinary[5..]);
    }
}
