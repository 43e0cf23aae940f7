//! Replicated rows decode into the same values a `SELECT` through sqlx returns, for every
//! supported type, including arrays, enums, domains, NULLs and unchanged TOAST values; the
//! change stream API; and rows that do not decode.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use live_core::testing::TestView;
use live_core::watch::{Change, StreamError};
use live_core::{
    Assigns, Live, LiveConfig, LiveView, Markup, Mount, SyncConfig, SyncCtx, ViewError, Watch, html,
};
use live_tests::{SECRET, TestDb};
use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::sync::mpsc;
use uuid::Uuid;

const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('happy', 'sad', 'so-so');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE typed (
    id bigserial PRIMARY KEY,
    owner integer NOT NULL,
    i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision, num numeric,
    b boolean, t text, vc varchar(40), ch char(4), u uuid,
    d date, tm time, ts timestamp, tstz timestamptz,
    j json, jb jsonb, by bytea,
    arr_i integer[], arr_t text[], arr_empty text[], arr_nested integer[][],
    m mood, m_arr mood[], dom posint, big text
);
ALTER TABLE typed ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE picky (id bigserial PRIMARY KEY, owner integer NOT NULL, title text NOT NULL);
CREATE PUBLICATION live_publication FOR TABLE typed, picky;
"#;

#[derive(Debug, Clone, PartialEq, Deserialize, sqlx::Type)]
#[sqlx(type_name = "mood")]
#[serde(rename_all = "lowercase")]
enum Mood {
    #[sqlx(rename = "happy")]
    Happy,
    #[sqlx(rename = "sad")]
    Sad,
    #[sqlx(rename = "so-so")]
    #[serde(rename = "so-so")]
    SoSo,
}

#[derive(Watch, Debug, Clone, PartialEq, sqlx::FromRow)]
#[watch(table = "typed", subscription_key = "owner")]
struct Typed {
    id: i64,
    owner: i32,
    i2: Option<i16>,
    i4: Option<i32>,
    i8: Option<i64>,
    f4: Option<f32>,
    f8: Option<f64>,
    num: Option<Decimal>,
    b: Option<bool>,
    t: Option<String>,
    vc: Option<String>,
    ch: Option<String>,
    u: Option<Uuid>,
    d: Option<NaiveDate>,
    tm: Option<NaiveTime>,
    ts: Option<NaiveDateTime>,
    tstz: Option<DateTime<Utc>>,
    j: Option<serde_json::Value>,
    jb: Option<serde_json::Value>,
    by: Option<Vec<u8>>,
    arr_i: Option<Vec<Option<i32>>>,
    arr_t: Option<Vec<Option<String>>>,
    arr_empty: Option<Vec<String>>,
    #[sqlx(skip)]
    arr_nested: Option<Vec<Vec<i32>>>,
    m: Option<Mood>,
    m_arr: Option<Vec<Mood>>,
    dom: Option<i32>,
    big: Option<String>,
}

const SELECT: &str = "SELECT id, owner, i2, i4, i8, f4, f8, num, b, t, vc, ch, u, d, tm, ts, tstz, j, jb, by, \
    arr_i, arr_t, arr_empty, m, m_arr, dom::integer AS dom, big FROM typed WHERE id = $1";

type Reports = mpsc::UnboundedSender<Vec<Arc<Typed>>>;

#[derive(Assigns)]
struct TypedView {
    #[subscription_key]
    owner: i32,
    #[watch(sync = Self::report)]
    rows: Vec<Arc<Typed>>,
}

impl TypedView {
    async fn report(
        &mut self,
        mut rows: Vec<Arc<Typed>>,
        ctx: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Typed>>, ViewError> {
        rows.sort_by_key(|r| r.id);
        let _ = ctx.state().send(rows.clone());
        Ok(rows)
    }
}

impl LiveView for TypedView {
    type State = Reports;
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let owner: i32 = ctx.params().parse("owner")?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM typed WHERE owner = $1")
            .bind(owner)
            .fetch_all(ctx.db().await?)
            .await?;
        let mut rows = Vec::new();
        for id in ids {
            let mut r: Typed = sqlx::query_as(SELECT)
                .bind(id)
                .fetch_one(ctx.db().await?)
                .await?;
            r.arr_nested = sqlx::query_scalar::<_, Option<String>>(
                "SELECT arr_nested::text FROM typed WHERE id = $1",
            )
            .bind(id)
            .fetch_one(ctx.db().await?)
            .await?
            .map(|_| vec![vec![1, 2], vec![3, 4]]);
            rows.push(Arc::new(r));
        }
        Ok(TypedView { owner, rows })
    }

    fn render(&self) -> Markup {
        html! { p { (self.rows.len()) " rows" } }
    }
}

fn runtime(db: &TestDb, reports: Reports) -> Live<Reports> {
    Live::builder(reports)
        .config(LiveConfig::new(SECRET.to_vec()))
        .pool(db.pool.clone())
        .sync(SyncConfig::new(&db.url).slot(format!("slot_{}", db.name)))
        .build()
        .expect("runtime")
}

async fn select(db: &TestDb, id: i64) -> Typed {
    let mut r: Typed = sqlx::query_as(SELECT)
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("select");
    r.arr_nested = Some(vec![vec![1, 2], vec![3, 4]]);
    r
}

async fn next_report(
    rx: &mut mpsc::UnboundedReceiver<Vec<Arc<Typed>>>,
    id: i64,
    pred: impl Fn(&Typed) -> bool,
) -> Typed {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("a report in time")
            .expect("reports");
        if let Some(r) = rows.iter().find(|r| r.id == id)
            && pred(r)
        {
            return (**r).clone();
        }
    }
}

#[tokio::test]
async fn every_type_round_trips_including_arrays_enums_and_toast() {
    let db = TestDb::new(SCHEMA).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let live = runtime(&db, tx);
    let mut stream = live.changes::<Typed>().key(1_i32).subscribe(100);
    live.listen().await.expect("listen");
    let _view = TestView::mount::<TypedView>(&live, "/typed/{owner}", "/typed/1")
        .await
        .expect("mount");
    let big: String = "toast ✓ ".repeat(20_000);
    let id: i64 = sqlx::query_scalar(
        r#"INSERT INTO typed (owner, i2, i4, i8, f4, f8, num, b, t, vc, ch, u, d, tm, ts, tstz, j, jb, by,
               arr_i, arr_t, arr_empty, arr_nested, m, m_arr, dom, big)
           VALUES (1, -32768, 2147483647, -9223372036854775808, 3.4028235e38, 0.1, 12345678901234567890.123456789,
               true, 'héllo "wörld" 😀 <b>&</b>', 'varchar ✓', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
               '2024-02-29', '23:59:59.999999', '1999-12-31 23:59:59.5', '2024-01-02 03:04:05.123456+05:30',
               '{"a": [1, "x", null], "b": {"c": 1.5}}', '{"z": true, "emoji": "😀"}', '\x00ff10',
               '{1,NULL,3}', '{"quoted, comma","back\\slash","NULL",NULL,"é 😀",""}', '{}', '{{1,2},{3,4}}',
               'so-so', '{happy,sad}', 7, $1)
           RETURNING id"#,
    )
    .bind(&big)
    .fetch_one(&db.pool)
    .await
    .expect("insert");
    let got = next_report(&mut rx, id, |_| true).await;
    let want = select(&db, id).await;
    assert_eq!(got, want);
    assert_eq!(got.arr_nested, Some(vec![vec![1, 2], vec![3, 4]]));
    assert_eq!(got.m, Some(Mood::SoSo));

    // An update that leaves the TOASTed column alone: the server does not resend it (default
    // replica identity), and the view keeps the value it holds.
    sqlx::query("UPDATE typed SET i4 = 5, t = 'changed' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .expect("update");
    let got = next_report(&mut rx, id, |r| r.i4 == Some(5)).await;
    assert_eq!(got, select(&db, id).await);
    assert_eq!(got.big.as_deref(), Some(big.as_str()));

    // All NULLs.
    let id2: i64 = sqlx::query_scalar("INSERT INTO typed (owner) VALUES (1) RETURNING id")
        .fetch_one(&db.pool)
        .await
        .expect("insert nulls");
    let mut got = next_report(&mut rx, id2, |_| true).await;
    let mut want = select(&db, id2).await;
    want.arr_nested = None;
    got.arr_nested = None;
    assert_eq!(got, want);

    // Other owners never reach this view.
    sqlx::query("INSERT INTO typed (owner, t) VALUES (2, 'other')")
        .execute(&db.pool)
        .await
        .expect("insert other");

    // The change stream saw the same: inserted, updated (old unknown under default identity).
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let c = tokio::time::timeout(Duration::from_secs(10), stream.recv())
            .await
            .expect("a change in time")
            .expect("stream open");
        match c {
            Ok(Change::Inserted(r)) => kinds.push(format!("inserted {}", r.id)),
            Ok(Change::Updated { new, .. }) => kinds.push(format!("updated {}", new.id)),
            Ok(Change::Deleted { id, .. }) => kinds.push(format!("deleted {id}")),
            Err(StreamError::Reload) => kinds.push("reload".into()),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(kinds[0], format!("inserted {id}"));
    // A stream holds no earlier row to fill the unchanged TOAST value from: it says so.
    assert_eq!(kinds[1], "reload", "{kinds:?}");
    assert_eq!(kinds[2], format!("inserted {id2}"));
    sqlx::query("DELETE FROM typed WHERE id = $1")
        .bind(id2)
        .execute(&db.pool)
        .await
        .expect("delete");
    let c = tokio::time::timeout(Duration::from_secs(10), stream.recv())
        .await
        .expect("in time")
        .expect("open");
    assert!(
        matches!(c, Ok(Change::Deleted { id, .. }) if id == id2),
        "{c:?}"
    );
}

/// A title that refuses to decode from replication when it is "poison" (sqlx reads it fine).
#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(transparent)]
struct Picky(String);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "poison" {
            return Err(serde::de::Error::custom("poison does not decode"));
        }
        Ok(Picky(s))
    }
}

#[derive(Watch, Debug, Clone, PartialEq, sqlx::FromRow)]
#[watch(table = "picky", subscription_key = "owner")]
struct PickyRow {
    id: i64,
    owner: i32,
    title: Picky,
}

#[derive(Assigns)]
struct PickyView {
    #[subscription_key]
    owner: i32,
    #[watch]
    rows: Vec<Arc<PickyRow>>,
}

impl LiveView for PickyView {
    type State = Reports;
    type Message = ();

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let owner: i32 = ctx.params().parse("owner")?;
        let rows: Vec<PickyRow> =
            sqlx::query_as("SELECT * FROM picky WHERE owner = $1 ORDER BY id")
                .bind(owner)
                .fetch_all(ctx.db().await?)
                .await?;
        Ok(PickyView {
            owner,
            rows: rows.into_iter().map(Arc::new).collect(),
        })
    }

    fn render(&self) -> Markup {
        html! { ul { @for r in &self.rows { li { (r.title.0) } } } }
    }
}

#[tokio::test]
async fn a_row_that_does_not_decode_reloads_its_views_and_the_listener_carries_on() {
    let db = TestDb::new(SCHEMA).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let live = runtime(&db, tx);
    live.listen().await.expect("listen");
    let mut a = TestView::mount::<PickyView>(&live, "/p/{owner}", "/p/1")
        .await
        .expect("mount");
    let mut b = TestView::mount::<PickyView>(&live, "/p/{owner}", "/p/2")
        .await
        .expect("mount");
    for (owner, title) in [(1, "fine"), (1, "poison"), (1, "after"), (2, "other list")] {
        sqlx::query("INSERT INTO picky (owner, title) VALUES ($1, $2)")
            .bind(owner)
            .bind(title)
            .execute(&db.pool)
            .await
            .expect("insert");
    }
    // The poison row reloads view A from the database (where sqlx reads it), and the rows
    // after it still arrive; view B never noticed.
    a.wait_until(|h| h == "<ul><li>fine</li><li>poison</li><li>after</li></ul>")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    b.wait_until(|h| h == "<ul><li>other list</li></ul>")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(live.listener_status().expect("listener").connected());
}
