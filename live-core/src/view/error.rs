//! Why a handler failed, and how that reaches the browser.

/// An error of any kind, kept as the source of [`ViewError::Other`].
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a handler failed. How each one reaches the browser is decided in one place: a page
/// answers an HTTP status, a refused join and a failed event a wire reason (see
/// `assets/README.md`).
///
/// ```
/// use live_core::ViewError;
///
/// fn parse_id(raw: &str) -> Result<i64, ViewError> {
///     raw.parse().map_err(|e| ViewError::with_source("bad id", e))
/// }
/// let e = parse_id("x").unwrap_err();
/// assert_eq!(e.to_string(), "bad id");
/// assert!(std::error::Error::source(&e).is_some(), "the parse error is kept");
/// assert!(matches!(ViewError::bad_request("no title"), ViewError::BadRequest(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// Anything else: a message, and the error that caused it when there is one (logged
    /// with its chain; the browser gets only a generic reason).
    #[error("{message}")]
    Other {
        /// What failed.
        message: String,
        /// Why.
        #[source]
        source: Option<BoxError>,
    },
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
    ///
    /// ```
    /// let e = live_core::ViewError::bad_request("a title is required");
    /// assert_eq!(e.to_string(), "bad request: a title is required");
    /// ```
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ViewError::BadRequest(msg.into())
    }

    /// An `Other` error with this message.
    ///
    /// ```
    /// let e = live_core::ViewError::other("the mail server said no");
    /// assert_eq!(e.to_string(), "the mail server said no");
    /// ```
    pub fn other(msg: impl std::fmt::Display) -> Self {
        ViewError::Other {
            message: msg.to_string(),
            source: None,
        }
    }

    /// An `Other` error with this message, keeping `source` as its cause.
    ///
    /// ```
    /// let io = std::io::Error::other("disk full");
    /// let e = live_core::ViewError::with_source("could not save the upload", io);
    /// assert_eq!(std::error::Error::source(&e).map(|s| s.to_string()).as_deref(), Some("disk full"));
    /// ```
    pub fn with_source(msg: impl std::fmt::Display, source: impl Into<BoxError>) -> Self {
        ViewError::Other {
            message: msg.to_string(),
            source: Some(source.into()),
        }
    }
}
