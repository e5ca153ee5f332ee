//! The cache's behaviour in one process: hits, absences, single-flight, invalidation and
//! write-through.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use super::*;

fn policy() -> CachePolicy {
    CachePolicy::with_ttl(Duration::from_secs(60))
}

/// Reads `key` `reads` times through a loader that finds `stored` and counts its runs;
/// every read must answer `stored`. Returns how many times the loader ran.
async fn loader_runs(cache: &Cache, key: &str, stored: Option<&str>, reads: usize) -> usize {
    let loads = AtomicUsize::new(0);
    for _ in 0..reads {
        let value: Option<String> = cache
            .get_or_load("t", key, policy(), || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(stored.map(str::to_owned))
            })
            .await
            .expect("loads");
        assert_eq!(value.as_deref(), stored);
    }
    loads.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_second_read_is_served_without_the_loader() {
    let cache = Cache::in_process(100);
    assert_eq!(loader_runs(&cache, "k", Some("v"), 2).await, 1);
}

#[tokio::test]
async fn absent_values_are_cached_too() {
    let cache = Cache::in_process(100);
    assert_eq!(loader_runs(&cache, "missing", None, 3).await, 1);
}

#[tokio::test]
async fn concurrent_misses_run_the_loader_once() {
    let cache = Cache::in_process(100);
    let loads = Arc::new(AtomicUsize::new(0));
    let reads = (0..50).map(|_| {
        let cache = cache.clone();
        let loads = loads.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("t", "hot", policy(), || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::io::Error>(Some(7_u32))
                })
                .await
                .expect("loads")
        })
    });
    for read in futures_join(reads).await {
        assert_eq!(read, Some(7));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn invalidation_makes_the_next_read_load_again() {
    let cache = Cache::in_process(100);
    let load = |value: u32| move || async move { Ok::<_, std::io::Error>(Some(value)) };
    let first: Option<u32> = cache.get_or_load("t", "k", policy(), load(1)).await.expect("ok");
    cache.invalidate("t", "k").await;
    let second: Option<u32> = cache.get_or_load("t", "k", policy(), load(2)).await.expect("ok");
    assert_eq!((first, second), (Some(1), Some(2)));
}

#[tokio::test]
async fn a_put_value_is_read_back_without_the_loader_until_its_repeat_invalidation() {
    let cache = Cache::in_process(100);
    let loads = AtomicUsize::new(0);
    let read = || {
        cache.get_or_load("t", "k", policy(), || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Some("from the database".to_owned()))
        })
    };
    assert_eq!(read().await.expect("ok").as_deref(), Some("from the database"));

    cache.put("t", "k", policy(), &"written through".to_owned()).await;

    assert_eq!(read().await.expect("ok").as_deref(), Some("written through"));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    tokio::time::sleep(REPEAT_INVALIDATION_AFTER + Duration::from_millis(100)).await;
    assert_eq!(read().await.expect("ok").as_deref(), Some("from the database"));
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_json_of_a_cached_value_is_returned_as_stored() {
    let cache = Cache::in_process(100);
    let json = cache
        .get_or_load_json("t", "k", policy(), || async {
            Ok::<_, std::io::Error>(Some(vec![1, 2]))
        })
        .await
        .expect("ok");
    assert_eq!(json.as_deref(), Some(&b"[1,2]"[..]));
}

#[tokio::test]
async fn loader_errors_are_returned_and_not_cached() {
    let cache = Cache::in_process(100);
    let failed: Result<Option<u32>, _> = cache
        .get_or_load("t", "k", policy(), || async {
            Err(std::io::Error::other("down"))
        })
        .await;
    assert!(failed.is_err());
    let loaded: Option<u32> = cache
        .get_or_load("t", "k", policy(), || async { Ok::<_, std::io::Error>(Some(3)) })
        .await
        .expect("ok");
    assert_eq!(loaded, Some(3));
}

#[tokio::test]
async fn a_fill_racing_a_write_is_corrected_by_the_repeated_invalidation() {
    let cache = Cache::in_process(100);
    // A read starts loading the old value, slowly…
    let racing = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("t", "k", policy(), || async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(Some("old".to_owned()))
                })
                .await
                .expect("loads")
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    // …the write commits and invalidates while that load is in flight…
    cache.invalidate("t", "k").await;
    assert_eq!(racing.await.expect("task").as_deref(), Some("old"));
    // …so the old value sits in the cache until the repeated invalidation.
    tokio::time::sleep(REPEAT_INVALIDATION_AFTER + Duration::from_millis(100)).await;
    let fresh: Option<String> = cache
        .get_or_load("t", "k", policy(), || async {
            Ok::<_, std::io::Error>(Some("new".to_owned()))
        })
        .await
        .expect("loads");
    assert_eq!(fresh.as_deref(), Some("new"));
}

#[tokio::test]
async fn an_invalidation_reaches_an_attached_local_cache_at_once() {
    let bus = Cache::in_process(100);
    let sessions: Arc<LocalCache<u64, &str>> =
        LocalCache::attached("sessions", 100, Duration::from_secs(60), &bus);
    sessions.insert(7, "active");
    sessions.insert(8, "active");

    bus.invalidate("sessions", "7").await;
    bus.invalidate("other", "8").await;

    assert_eq!(sessions.get(&7), None);
    assert_eq!(sessions.get(&8), Some("active"));
}

#[test]
fn a_local_cache_with_a_zero_ttl_keeps_nothing() {
    let bus = Cache::in_process(100);
    let sessions: Arc<LocalCache<u64, u64>> = LocalCache::attached("s", 100, Duration::ZERO, &bus);
    sessions.insert(1, 1);
    assert_eq!(sessions.get(&1), None);
}

#[test]
fn jitter_stays_within_ten_percent() {
    for _ in 0..1000 {
        let ttl = jittered(Duration::from_secs(100));
        assert!(ttl >= Duration::from_secs(90) && ttl <= Duration::from_secs(110));
    }
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("task"));
    }
    results
}
