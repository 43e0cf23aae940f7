//! The HTTP side: the runtime an app builds ([`Live`]), mounting views on routes
//! ([`RouterExt`]), the first (static) render of a GET, the websocket endpoint, the client
//! script, and serving with limits.

mod assets;
mod health;
mod live;
mod page;
mod serve;
mod upgrade;

pub use health::Health;
pub use live::{ChangesBuilder, Live, LiveBuilder, LiveError, RouterExt};
pub use page::Page;
pub use serve::{ServeConfig, serve, serve_until, serve_with, shutdown_signal};
