//! Events from the browser.

use std::str::FromStr;

use serde::de::DeserializeOwned;

use super::ViewError;

/// The kind of DOM event that sent an [`Event`].
///
/// ```
/// use live_core::{Event, EventKind};
///
/// let e = Event::new(EventKind::KeyDown, "search", serde_json::json!({"key": "Enter"}));
/// let submitted = match e.kind {
///     EventKind::Submit => true,
///     EventKind::KeyDown => e.get("key") == Some("Enter"),
///     _ => false,
/// };
/// assert!(submitted);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// `live-click`
    Click,
    /// `live-dblclick`
    DblClick,
    /// `live-submit`
    Submit,
    /// `live-change`
    Change,
    /// `live-keydown`
    KeyDown,
    /// `live-keyup`
    KeyUp,
    /// `live-blur`
    Blur,
    /// `live-focus`
    Focus,
    /// `pushEvent` from a client hook
    Hook,
    /// Anything else
    Other(String),
}

impl EventKind {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "click" => EventKind::Click,
            "dblclick" => EventKind::DblClick,
            "submit" => EventKind::Submit,
            "change" => EventKind::Change,
            "keydown" => EventKind::KeyDown,
            "keyup" => EventKind::KeyUp,
            "blur" => EventKind::Blur,
            "focus" => EventKind::Focus,
            "hook" => EventKind::Hook,
            other => EventKind::Other(other.to_string()),
        }
    }
}

/// An event from the browser.
///
/// ```
/// use live_core::{Event, EventKind};
/// let e = Event::new(EventKind::Click, "toggle", serde_json::json!({"id": "7"}));
/// assert_eq!(e.get("id"), Some("7"));
/// assert_eq!(e.get_as::<i64>("id").unwrap(), 7);
/// assert!(e.get_as::<i64>("missing").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Event {
    /// What sent it.
    pub kind: EventKind,
    /// The event name (the binding's attribute value).
    pub name: String,
    /// Values: `live-value-*` attributes, form fields, `key`, an input's `value`.
    pub value: serde_json::Map<String, serde_json::Value>,
    /// For `change` events, the name of the field that changed.
    pub target: Option<String>,
}

impl Event {
    /// An event (for tests and hooks).
    pub fn new(kind: EventKind, name: impl Into<String>, value: serde_json::Value) -> Self {
        Event {
            kind,
            name: name.into(),
            value: match value {
                serde_json::Value::Object(m) => m,
                _ => serde_json::Map::new(),
            },
            target: None,
        }
    }

    /// A value as text (the first one, if the field repeats).
    pub fn get(&self, field: &str) -> Option<&str> {
        match self.value.get(field)? {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()),
            _ => None,
        }
    }

    /// A value parsed with `FromStr`; a missing or unparsable value is a `BadRequest`.
    pub fn get_as<T: FromStr>(&self, field: &str) -> Result<T, ViewError> {
        let raw = self
            .get(field)
            .ok_or_else(|| ViewError::bad_request(format!("missing value {field:?}")))?;
        raw.trim()
            .parse()
            .map_err(|_| ViewError::bad_request(format!("bad value for {field:?}")))
    }

    /// All values deserialized into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ViewError> {
        serde_json::from_value(serde_json::Value::Object(self.value.clone()))
            .map_err(|e| ViewError::bad_request(e.to_string()))
    }
}
