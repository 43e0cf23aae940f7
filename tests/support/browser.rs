//! Headless Chromium through Debian's chromedriver, driven with fantoccini. Chromedriver and
//! the Chromium it starts share a process group, which is killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// A chromedriver with one browser session.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    profile: std::path::PathBuf,
}

use crate::free_port;

fn find(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let driver_bin = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
            .expect("chromedriver is not installed (apt-get install chromium-driver)");
        let chrome_bin = find(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"])
            .expect("chromium is not installed (apt-get install chromium)");
        let port = free_port();
        use std::os::unix::process::CommandExt;
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let profile =
            std::env::temp_dir().join(format!("live-chrome-{}-{port}", std::process::id()));
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chrome_bin,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=1024,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let client = loop {
            let mut b = ClientBuilder::new(HttpConnector::new());
            b.capabilities(caps.clone());
            match b.connect(&url).await {
                Ok(c) => break c,
                Err(e) if start.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("webdriver session: {e}"),
            }
        };
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// Opens `url` and waits until every live view on it is connected.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
        self.wait_connected().await;
    }

    /// Waits until every `[data-live-root]` has the class `live-connected`.
    pub async fn wait_connected(&self) {
        self.wait_js(
            "const r = document.querySelectorAll('[data-live-root]'); \
             return r.length > 0 && [...r].every(e => e.classList.contains('live-connected'));",
        )
        .await;
    }

    /// Waits until a JavaScript body returns true (10 s).
    pub async fn wait_js(&self, body: &str) {
        let start = Instant::now();
        loop {
            let v = self.client.execute(body, vec![]).await.expect("execute");
            if v.as_bool() == Some(true) {
                return;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let html = self.client.source().await.unwrap_or_default();
                panic!("timed out waiting for `{body}`; page: {html}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs JavaScript and returns its result.
    pub async fn js(&self, body: &str) -> serde_json::Value {
        self.client.execute(body, vec![]).await.expect("execute")
    }

    /// The element matching a CSS selector.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// Stops the session (the process group is killed on drop anyway).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            // SAFETY: the driver was started as the leader of its own process group; signal
            // that group (chromedriver and the Chromium it launched).
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = self.driver.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above; make sure nothing of the group survives.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = self.driver.wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
