//! Frames on the wire: JSON arrays `[join_ref, ref, topic, event, payload]` (Phoenix's shape).
//! The full protocol is documented in `assets/README.md`.

use serde_json::Value;

/// A frame from the browser.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Inbound {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub(crate) struct MalformedFrame(pub String);

fn opt_string(v: &Value) -> Result<Option<String>, MalformedFrame> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(MalformedFrame("refs must be strings or null".into())),
    }
}

/// Parses a text frame.
pub(crate) fn parse(text: &str) -> Result<Inbound, MalformedFrame> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| MalformedFrame(format!("not JSON: {e}")))?;
    let Value::Array(mut a) = v else {
        return Err(MalformedFrame("a frame is a 5-element array".into()));
    };
    if a.len() != 5 {
        return Err(MalformedFrame("a frame is a 5-element array".into()));
    }
    let payload = a.pop().unwrap_or(Value::Null);
    let event = match a.pop() {
        Some(Value::String(s)) => s,
        _ => return Err(MalformedFrame("event must be a string".into())),
    };
    let topic = match a.pop() {
        Some(Value::String(s)) => s,
        _ => return Err(MalformedFrame("topic must be a string".into())),
    };
    let msg_ref = opt_string(&a[1])?;
    let join_ref = opt_string(&a[0])?;
    if !payload.is_object() {
        return Err(MalformedFrame("payload must be an object".into()));
    }
    Ok(Inbound {
        join_ref,
        msg_ref,
        topic,
        event,
        payload,
    })
}

fn json_opt(s: Option<&str>) -> String {
    match s {
        Some(s) => serde_json::to_string(s).unwrap_or_else(|_| "null".into()),
        None => "null".into(),
    }
}

/// Builds a frame whose payload is already JSON.
pub(crate) fn frame(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload_json: &str,
) -> String {
    let mut out = String::with_capacity(payload_json.len() + topic.len() + 48);
    out.push('[');
    out.push_str(&json_opt(join_ref));
    out.push(',');
    out.push_str(&json_opt(msg_ref));
    out.push(',');
    out.push_str(&json_opt(Some(topic)));
    out.push(',');
    out.push_str(&json_opt(Some(event)));
    out.push(',');
    out.push_str(payload_json);
    out.push(']');
    out
}

/// A reply frame: `{"status": "ok"|"error", "response": …}`.
pub(crate) fn reply(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    ok: bool,
    response_json: &str,
) -> String {
    let payload = format!(
        "{{\"status\":\"{}\",\"response\":{}}}",
        if ok { "ok" } else { "error" },
        response_json
    );
    frame(join_ref, msg_ref, topic, "reply", &payload)
}

/// Every reason the server gives on the wire: in error replies (`{"reason": …}`), in the
/// `phx_error` of a crashed view and in `error` events of the connection. The one place they
/// are spelled (`assets/README.md` documents what the client does with each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A join of a topic that is joined already.
    AlreadyJoined,
    /// A payload of the wrong shape.
    BadPayload,
    /// The connection's inbound byte budget is used up: retry later.
    Busy,
    /// The view crashed (`phx_error`).
    Crashed,
    /// The page token is too old: reload the page.
    Expired,
    /// The event handler returned an error.
    HandlerFailed,
    /// The page token does not verify.
    InvalidToken,
    /// The frame is not a frame (`error` event).
    Malformed,
    /// The view could not mount.
    MountFailed,
    /// The URL names other path params than the page's: load that page.
    Navigate,
    /// The view answered not found.
    NotFound,
    /// A frame for a topic that is not joined.
    NotJoined,
    /// The node's mount queue is full, or gone (shutting down).
    Overloaded,
    /// The connection has as many views as allowed.
    TooManyViews,
    /// The view refused the session.
    Unauthorized,
    /// The view has no handler for the event.
    UnknownEvent,
    /// A resume named a view of another route or session.
    ResumeRefused,
    /// A resume named a version the view never sent.
    BadVersion,
}

impl Reason {
    /// The reason as the client reads it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::AlreadyJoined => "already_joined",
            Reason::BadPayload => "bad_payload",
            Reason::Busy => "busy",
            Reason::Crashed => "crashed",
            Reason::Expired => "expired",
            Reason::HandlerFailed => "handler_failed",
            Reason::InvalidToken => "invalid_token",
            Reason::Malformed => "malformed",
            Reason::MountFailed => "mount_failed",
            Reason::Navigate => "navigate",
            Reason::NotFound => "not_found",
            Reason::NotJoined => "not_joined",
            Reason::Overloaded => "overloaded",
            Reason::TooManyViews => "too_many_views",
            Reason::Unauthorized => "unauthorized",
            Reason::UnknownEvent => "unknown_event",
            Reason::ResumeRefused => "resume_refused",
            Reason::BadVersion => "bad_version",
        }
    }
}

/// An error reply with a reason.
pub(crate) fn error_reply(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    reason: Reason,
) -> String {
    let response = serde_json::json!({ "reason": reason.as_str() }).to_string();
    reply(join_ref, msg_ref, topic, false, &response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let f = parse(r#"["1","2","lv:a","event",{"x":1}]"#).unwrap();
        assert_eq!(f.join_ref.as_deref(), Some("1"));
        assert_eq!(f.msg_ref.as_deref(), Some("2"));
        assert_eq!(f.topic, "lv:a");
        assert_eq!(f.event, "event");
        let f = parse(r#"[null,5,"phoenix","heartbeat",{}]"#).unwrap();
        assert_eq!(f.msg_ref.as_deref(), Some("5"));
        for bad in [
            "",
            "{}",
            "[1,2,3]",
            r#"["1","2",3,"e",{}]"#,
            r#"["1","2","t","e",[]]"#,
            r#"[{},"2","t","e",{}]"#,
            "[\"1\",\"2\",\"t\",\"e\",{}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builds_frames() {
        assert_eq!(
            frame(Some("1"), None, "lv:\"x", "diff", "{}"),
            r#"["1",null,"lv:\"x","diff",{}]"#
        );
        let r = error_reply(None, Some("3"), "t", Reason::UnknownEvent);
        let v: Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v[4]["status"], "error");
        assert_eq!(v[4]["response"]["reason"], "unknown_event");
    }
}
