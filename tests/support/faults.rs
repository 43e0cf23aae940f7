//! A writer of thousands of committed changes, and the check that every view ends with
//! exactly the database's rows.

use std::time::Duration;

use sqlx::PgPool;

use crate::items::rows;
use crate::{Rng, TestDb, WsClient};

/// Runs one statement until it succeeds (every write is idempotent, so a retry after a lost
/// acknowledgement changes nothing).
async fn retry(pool: &PgPool, sql: &str, binds: (i64, i64, &str)) {
    loop {
        let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .bind(binds.0)
            .bind(binds.1)
            .bind(binds.2);
        match q.execute(pool).await {
            Ok(_) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Spawns `n` single-row committed writes (inserts, updates, moves between lists 1–4, deletes)
/// on `items` and `items_d`.
pub fn spawn_writer(pool: PgPool, n: usize, seed: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = Rng(seed);
        for op in 0..n {
            let table = if rng.below(2) == 0 {
                "items"
            } else {
                "items_d"
            };
            let id = 1 + rng.below(300) as i64;
            let list = 1 + rng.below(4) as i64;
            let title = format!("v{op}");
            match rng.below(10) {
                0..=3 => {
                    let sql = format!(
                        "INSERT INTO {table} (id, list_id, title) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO UPDATE SET list_id = EXCLUDED.list_id, title = EXCLUDED.title"
                    );
                    retry(&pool, &sql, (id, list, &title)).await;
                }
                4..=6 => {
                    let sql = format!(
                        "UPDATE {table} SET title = $3, done = NOT done WHERE id = $1 AND $2 > 0"
                    );
                    retry(&pool, &sql, (id, list, &title)).await;
                }
                7 | 8 => {
                    let sql = format!("UPDATE {table} SET list_id = $2 WHERE id = $1 AND $3 <> ''");
                    retry(&pool, &sql, (id, list, &title)).await;
                }
                _ => {
                    let sql = format!("DELETE FROM {table} WHERE id = $1 AND $2 > 0 AND $3 <> ''");
                    retry(&pool, &sql, (id, list, &title)).await;
                }
            }
        }
    })
}

/// Opens a view of each of `lists` in both tables (`/lists/<l>` and `/d/<l>`).
pub async fn open_list_views(
    addr: std::net::SocketAddr,
    lists: &[i64],
) -> Vec<(String, WsClient, String)> {
    let mut views = Vec::new();
    for l in lists {
        for path in [format!("/lists/{l}"), format!("/d/{l}")] {
            let (c, t) = crate::open(addr, &path).await;
            views.push((path, c, t));
        }
    }
    views
}

/// Waits (up to 60 s) until every view shows exactly its list's rows in the database.
pub async fn assert_views_match_db(db: &TestDb, views: &mut [(String, WsClient, String)]) {
    for (path, client, topic) in views.iter_mut() {
        let table = if path.starts_with("/d/") {
            "items_d"
        } else {
            "items"
        };
        let list: i64 = path
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("list id");
        let want: Vec<(i64, String)> = loop {
            match sqlx::query_as::<_, (i64, String, bool)>(sqlx::AssertSqlSafe(format!(
                "SELECT id, title, done FROM {table} WHERE list_id = $1 ORDER BY id"
            )))
            .bind(list)
            .fetch_all(&db.pool)
            .await
            {
                Ok(r) => {
                    break r
                        .into_iter()
                        .map(|(id, t, d)| (id, if d { format!("{t} ✓") } else { t }))
                        .collect();
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let ok = client
            .wait_html(topic, Duration::from_secs(60), |h| rows(h) == want)
            .await;
        let got = rows(&client.html(topic));
        assert!(
            ok,
            "{path}: the view does not match the database\n db: {} rows\n view: {} rows\n missing: {:?}\n extra: {:?}",
            want.len(),
            got.len(),
            want.iter().filter(|r| !got.contains(r)).collect::<Vec<_>>(),
            got.iter().filter(|r| !want.contains(r)).collect::<Vec<_>>()
        );
        assert!(!want.is_empty() || got.is_empty());
    }
}
