//! A TCP proxy in front of an app, so a test can cut a browser's connection the way a network
//! does (both ends see it drop) while the app keeps running, and keep the browser offline for
//! a while.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// A proxy on a free port of 127.0.0.1, forwarding to `target`.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    offline: Arc<AtomicBool>,
    conns: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let offline = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn({
            let offline = offline.clone();
            let conns = conns.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if offline.load(Ordering::Acquire) {
                        drop(client); // the network is down: the connection fails
                        continue;
                    }
                    conns.lock().await.spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            }
        });
        TcpProxy {
            addr,
            offline,
            conns,
            accept,
        }
    }

    /// Cuts every open connection (both ends see it close) and refuses new ones until
    /// [`TcpProxy::online`].
    pub async fn offline(&self) {
        self.offline.store(true, Ordering::Release);
        self.conns.lock().await.abort_all();
    }

    /// Accepts connections again.
    pub fn online(&self) {
        self.offline.store(false, Ordering::Release);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
