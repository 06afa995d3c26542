//! Errors of every layer, each carrying a kind (mapped once onto a C status code) and a message
//! that names what failed: the URL or key, the box, the expected and actual sizes.

use std::fmt;

/// What went wrong, coarse enough to map one-to-one onto the C ABI's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A NULL, a bad box, a wrong buffer length, a bad option.
    InvalidArgument,
    /// A box outside the volume while `bounded` is set.
    OutOfBounds,
    /// A layer, info or chunk that does not exist (chunks: without `fill_missing`).
    NotFound,
    /// An I/O or network failure (after retries).
    Io,
    /// Credentials refused.
    Auth,
    /// Corrupt data: bad info, chunk or shard index.
    Decode,
    /// A feature this library does not implement (yet).
    Unsupported,
    /// A bug: a caught panic or a broken invariant.
    Internal,
    /// An object changed while it was being read (a conditional read failed); the reader
    /// retries once with fresh indices, then reports it as I/O.
    Stale,
}

/// An error with its kind and a message naming what failed.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn out_of_bounds(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OutOfBounds, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, message)
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn stale(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Stale, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with context (a URL, a key), keeping the kind.
    #[must_use]
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error { kind: self.kind, message: format!("{what}: {}", self.message) }
    }

    /// The same error with `what` appended in parentheses.
    pub fn note(self, what: impl fmt::Display) -> Self {
        Error { kind: self.kind, message: format!("{} ({what})", self.message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
