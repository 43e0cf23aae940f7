//! Postgres restarted during a stream of committed writes (its own test binary: it restarts
//! the cluster that the tests of a binary share).

use std::time::Duration;

use live_tests::items;
use live_tests::{TestDb, with_cluster};

#[tokio::test]
async fn restarting_postgres_during_writes_loses_and_doubles_nothing() {
    let db = TestDb::new(items::SCHEMA).await;
    let (addr, live) = items::start(&db).await;
    let mut views = live_tests::faults::open_list_views(addr, &[1, 2, 3]).await;
    let writer = live_tests::faults::spawn_writer(db.pool.clone(), 3000, 11);
    let mut restarts = 0;
    while !writer.is_finished() && restarts < 2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        tokio::task::spawn_blocking(|| with_cluster(|c| c.restart()))
            .await
            .expect("join")
            .expect("restart postgres");
        restarts += 1;
    }
    writer.await.expect("writer");
    assert_eq!(restarts, 2, "postgres was restarted during the writes");
    live_tests::faults::assert_views_match_db(&db, &mut views).await;
    let status = live.listener_status().expect("listener");
    assert!(
        status.reconnects() >= 2,
        "reconnects: {}",
        status.reconnects()
    );
    eprintln!(
        "postgres restarted {restarts} times; listener reconnected {} times; {} transactions dispatched",
        status.reconnects(),
        status.transactions()
    );
}
