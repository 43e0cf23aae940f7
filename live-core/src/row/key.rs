//! Subscription keys and row ids as they appear in Postgres' text output.

use std::fmt;
use std::sync::Arc;

/// A key or id value in Postgres' text form (`42`, `abc`, `t`), the form in which rows arrive
/// from logical replication. Cheap to clone.
///
/// ```
/// use live_core::{Key, KeyValue};
/// assert_eq!(42_i64.to_key(), Some(Key::from("42")));
/// assert_eq!(None::<i64>.to_key(), None);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(Arc<str>);

impl Key {
    /// The text of the key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key(Arc::from(s))
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key(Arc::from(s))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A value that can scope a subscription or identify a row: it turns into the exact text
/// Postgres prints for it, so it can be compared with replicated rows without decoding them.
///
/// Implemented for integers, strings and `bool`; `Option<T>` gives `None` for `None` (SQL
/// `NULL`, which never matches). Implement it for your own id types (a UUID newtype, say) by
/// returning Postgres' text output (`Some(Key::from(uuid.to_string()))`).
///
/// ```
/// use live_core::{Key, KeyValue};
/// struct ListId(u32);
/// impl KeyValue for ListId {
///     fn to_key(&self) -> Option<Key> { self.0.to_key() }
/// }
/// assert_eq!(ListId(7).to_key().unwrap().as_str(), "7");
/// ```
pub trait KeyValue {
    /// The text form, or `None` for SQL `NULL`.
    fn to_key(&self) -> Option<Key>;
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl KeyValue for $t {
            fn to_key(&self) -> Option<Key> {
                Some(Key::from(self.to_string()))
            }
        }
    )*};
}
int_key!(i8, i16, i32, i64, u8, u16, u32, u64, i128, u128);

impl KeyValue for String {
    fn to_key(&self) -> Option<Key> {
        Some(Key::from(self.as_str()))
    }
}

impl KeyValue for str {
    fn to_key(&self) -> Option<Key> {
        Some(Key::from(self))
    }
}

impl KeyValue for bool {
    fn to_key(&self) -> Option<Key> {
        Some(Key::from(if *self { "t" } else { "f" }))
    }
}

impl KeyValue for Key {
    fn to_key(&self) -> Option<Key> {
        Some(self.clone())
    }
}

impl<T: KeyValue + ?Sized> KeyValue for &T {
    fn to_key(&self) -> Option<Key> {
        (**self).to_key()
    }
}

impl<T: KeyValue> KeyValue for Option<T> {
    fn to_key(&self) -> Option<Key> {
        self.as_ref().and_then(KeyValue::to_key)
    }
}

impl<T: KeyValue + ?Sized> KeyValue for Arc<T> {
    fn to_key(&self) -> Option<Key> {
        (**self).to_key()
    }
}
