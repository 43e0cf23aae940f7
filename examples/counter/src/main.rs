//! The smallest live view: a counter. `cargo run -p counter`, then open the printed URL.

mod view;

use axum::Router;
use live_core::{Live, LiveConfig, RouterExt};
use view::Counter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let live = Live::builder(()).config(LiveConfig::from_env()).build()?;
    let app = Router::new()
        .live_view::<Counter>("/", &live)
        .merge(live.router());
    let addr = std::env::var("PORT")
        .map(|p| {
            if p.contains(':') {
                p
            } else {
                format!("127.0.0.1:{p}")
            }
        })
        .unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("counter running at http://{}/", listener.local_addr()?);
    live_core::serve(listener, app).await?;
    Ok(())
}
