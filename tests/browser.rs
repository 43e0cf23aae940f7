//! The browser client in real headless Chromium: the counter example's page.

use std::time::Duration;

use live_tests::browser::Browser;

async fn start_counter() -> std::net::SocketAddr {
    live_tests::serve(counter_app()).await
}

fn counter_app() -> axum::Router {
    use live_core::{Live, LiveConfig, RouterExt};
    let live = Live::builder(())
        .config(LiveConfig::new(live_tests::SECRET.to_vec()))
        .build()
        .expect("runtime");
    axum::Router::new()
        .live_view::<counter_view::Counter>("/", &live)
        .merge(live.router())
}

/// The counter example's view, compiled from its source so the test drives exactly it.
#[path = "../examples/counter/src/view.rs"]
mod counter_view;

#[tokio::test]
async fn clicking_updates_the_counter_and_typed_text_survives_pushes() {
    let addr = start_counter().await;
    let b = Browser::start().await;
    b.open(&format!("http://{addr}/")).await;
    assert_eq!(b.find("#count").await.text().await.unwrap(), "0");
    b.find("#inc").await.click().await.unwrap();
    b.wait_js("return document.querySelector('#count').textContent === '1'")
        .await;
    b.find("#add").await.click().await.unwrap();
    b.wait_js("return document.querySelector('#count').textContent === '11'")
        .await;
    b.wait_js("return document.title === 'Count: 11'").await;

    // Type into the input, keep focus, and let server pushes re-render around it.
    let note = b.find("#note").await;
    note.click().await.unwrap();
    note.send_keys("héllo wörld 😀").await.unwrap();
    b.js("document.querySelector('#note').setSelectionRange(2, 5); return true")
        .await;
    b.js("document.querySelector('#start').dispatchEvent(new MouseEvent('click', {bubbles: true})); document.querySelector('#note').focus(); document.querySelector('#note').setSelectionRange(2, 5); return true").await;
    b.wait_js("return Number(document.querySelector('#ticks').textContent) >= 5")
        .await;
    let state = b
        .js("const n = document.querySelector('#note'); return [n.value, document.activeElement === n, n.selectionStart, n.selectionEnd]")
        .await;
    assert_eq!(state[0], "héllo wörld 😀", "{state}");
    assert_eq!(state[1], true, "the input kept focus: {state}");
    assert_eq!(state[2], 2);
    assert_eq!(state[3], 5);
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.close().await;
}

/// Connected mounts of `FormView`, across reconnects.
static JOINS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A form that echoes what is typed, a region the server must not touch, and a join counter.
#[derive(live_core::Assigns)]
struct FormView {
    echo: String,
    bumps: u32,
    joins: usize,
}

impl live_core::LiveView for FormView {
    type State = ();
    type Message = ();

    async fn mount(ctx: &mut live_core::Mount<'_, Self>) -> Result<Self, live_core::ViewError> {
        let joins = if ctx.is_connected() {
            JOINS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
        } else {
            0
        };
        Ok(FormView {
            echo: String::new(),
            bumps: 0,
            joins,
        })
    }

    fn render(&self) -> live_core::Markup {
        maud::html! {
            form #f live-change="validate" { input #name name="name" type="text" autocomplete="off"; }
            p #echo { (self.echo) }
            p #joins { (self.joins) }
            div #widget live-ignore { "server " (self.bumps) }
            p #bumps { (self.bumps) }
            button #bump live-click="bump" { "bump" }
        }
    }

    async fn handle_event(
        &mut self,
        e: live_core::Event,
        _ctx: &mut live_core::Ctx<'_, Self>,
    ) -> Result<(), live_core::ViewError> {
        match e.name.as_str() {
            "validate" => self.echo = format!("hello {}", e.get("name").unwrap_or("")),
            "bump" => self.bumps += 1,
            _ => return Err(live_core::ViewError::UnknownEvent(e.name)),
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_client_recovers_forms_after_a_reconnect_and_leaves_ignored_regions_alone() {
    use live_core::{Live, LiveConfig, RouterExt};
    let mut config = LiveConfig::new(live_tests::SECRET.to_vec());
    // The server closes sockets that stay silent this long: the client must reconnect. With
    // no grace period the view does not wait for it, so the rejoin is a fresh mount (the case
    // form recovery is for: past the grace period, on another node, after a deploy).
    config.idle_timeout = Duration::from_millis(2500);
    config.resume_grace = Duration::ZERO;
    let live = Live::builder(()).config(config).build().expect("runtime");
    let app = axum::Router::new()
        .live_view::<FormView>("/form", &live)
        .merge(live.router());
    let addr = live_tests::serve(app).await;
    let b = Browser::start().await;
    b.open(&format!("http://{addr}/form")).await;

    // live-change sends the form; the server echoes it.
    b.find("#name").await.send_keys("Ada").await.unwrap();
    b.wait_js("return document.querySelector('#echo').textContent === 'hello Ada'")
        .await;

    // live-ignore: the server re-renders the region, the client keeps what it put there.
    b.js("document.querySelector('#widget').textContent = 'client widget'; return true")
        .await;
    b.find("#bump").await.click().await.unwrap();
    b.wait_js("return document.querySelector('#bumps').textContent === '1'")
        .await;
    assert_eq!(
        b.js("return document.querySelector('#widget').textContent")
            .await,
        "client widget"
    );

    // The server drops the idle socket; the client reconnects, rejoins (a fresh mount) and
    // re-sends the form's values, so the new view knows what was typed.
    let before: usize = b
        .js("return Number(document.querySelector('#joins').textContent)")
        .await
        .as_u64()
        .unwrap_or(0) as usize;
    b.wait_js(&format!(
        "return Number(document.querySelector('#joins').textContent) > {before} && document.querySelector('[data-live-root]').classList.contains('live-connected')"
    ))
    .await;
    b.wait_js("return document.querySelector('#echo').textContent === 'hello Ada'")
        .await;
    assert_eq!(
        b.js("return document.querySelector('#name').value").await,
        "Ada"
    );
    b.close().await;
}
