//! Why a handler failed, and how that reaches the browser.

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// No handler for this event (the client gets `unknown_event`; the view carries on).
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// The request or event payload is not acceptable (a page answers 400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The thing asked for does not exist (a page answers 404).
    #[error("not found")]
    NotFound,
    /// The session may not see this (a page answers 403, a join is refused).
    #[error("unauthorized")]
    Unauthorized,
    /// A database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// `Mount::db` was called but the app has no database.
    #[error("no database configured")]
    NoDatabase,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// How an error reaches the browser: the one place that decides a page's HTTP status and
/// the wire reasons of a refused join and a failed event (`protocol::Reason`).
impl ViewError {
    /// The status and text of a page whose mount or params failed.
    pub(crate) fn http_status(&self) -> (axum::http::StatusCode, &'static str) {
        use axum::http::StatusCode;
        match self {
            ViewError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            ViewError::BadRequest(_) | ViewError::UnknownEvent(_) => {
                (StatusCode::BAD_REQUEST, "Bad request")
            }
            ViewError::Unauthorized => (StatusCode::FORBIDDEN, "Forbidden"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        }
    }

    /// The reason a join is refused with when the mount failed.
    pub(crate) fn join_reason(&self) -> crate::protocol::Reason {
        use crate::protocol::Reason;
        match self {
            ViewError::NotFound => Reason::NotFound,
            ViewError::Unauthorized => Reason::Unauthorized,
            _ => Reason::MountFailed,
        }
    }

    /// The reason an event is answered with when its handler failed.
    pub(crate) fn event_reason(&self) -> crate::protocol::Reason {
        use crate::protocol::Reason;
        match self {
            ViewError::UnknownEvent(_) => Reason::UnknownEvent,
            ViewError::BadRequest(_) => Reason::BadPayload,
            _ => Reason::HandlerFailed,
        }
    }

    /// A `BadRequest` with this message.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ViewError::BadRequest(msg.into())
    }

    /// An `Other` error with this message.
    pub fn other(msg: impl std::fmt::Display) -> Self {
        ViewError::Other(msg.to_string())
    }
}
