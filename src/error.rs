//! The one error type of the native core. Python sees it through `From<CrnasError> for PyErr`
//! (in `python.rs`): argument problems become `ValueError`/`TypeError` naming the argument, what
//! was expected and what was given.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CrnasError {
    /// A value has the wrong shape, range or content.
    #[error("{arg}: expected {expected}, got {got}")]
    Value { arg: String, expected: String, got: String },
    /// A value has the wrong type (dtype included).
    #[error("{arg}: expected {expected}, got {got}")]
    Type { arg: String, expected: String, got: String },
    /// An error raised by libtorch while running a tensor op.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    /// Malformed JSON given to a `from_json` constructor.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, CrnasError>;

impl CrnasError {
    pub fn value(arg: impl Into<String>, expected: impl Into<String>, got: impl ToString) -> Self {
        CrnasError::Value { arg: arg.into(), expected: expected.into(), got: got.to_string() }
    }

    pub fn type_(arg: impl Into<String>, expected: impl Into<String>, got: impl ToString) -> Self {
        CrnasError::Type { arg: arg.into(), expected: expected.into(), got: got.to_string() }
    }
}

/// `ensure!(cond, CrnasError::value(...))`: return the error unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $err:expr) => {
        if !($cond) {
            return Err($err);
        }
    };
}
pub(crate) use ensure;
