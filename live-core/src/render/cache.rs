//! Row HTML shared between views: one string per (row, call site, dependencies).

use std::collections::HashMap;
use std::hash::Hasher;
use std::panic::Location;
use std::sync::{Arc, Mutex, Weak};

use super::RowHtml;

type CacheKey = (usize, usize, u64);

struct Cache {
    map: HashMap<CacheKey, Weak<RowHtml>>,
    sweep_at: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn cache_key(ptr: usize, site: &'static Location<'static>, deps: u64) -> CacheKey {
    (ptr, site as *const Location<'static> as usize, deps)
}

/// The shared HTML for a row, if some view holds it.
///
/// A hit is only possible while some view holds the `RowHtml`, whose weak reference to the
/// row keeps the row's allocation from being reused: a pointer match is the same row.
pub(crate) fn get(ptr: usize, site: &'static Location<'static>, deps: u64) -> Option<Arc<RowHtml>> {
    let guard = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .as_ref()
        .and_then(|c| c.map.get(&cache_key(ptr, site, deps)))
        .and_then(Weak::upgrade)
}

/// Shares `html` (rendered outside the lock); if another view shared the same row in the
/// meantime, that one is returned.
pub(crate) fn insert(
    ptr: usize,
    site: &'static Location<'static>,
    deps: u64,
    html: RowHtml,
) -> Arc<RowHtml> {
    let key = cache_key(ptr, site, deps);
    let mut guard = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache = guard.get_or_insert_with(|| Cache {
        map: HashMap::new(),
        sweep_at: 1024,
    });
    if let Some(hit) = cache.map.get(&key).and_then(Weak::upgrade) {
        return hit;
    }
    let html = Arc::new(html);
    cache.map.insert(key, Arc::downgrade(&html));
    if cache.map.len() >= cache.sweep_at {
        cache.map.retain(|_, w| w.strong_count() > 0);
        cache.sweep_at = (cache.map.len() * 2).max(1024);
    }
    html
}

/// A small fast hasher for dependency values (FxHash's mixing step).
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}
