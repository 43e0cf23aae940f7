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
