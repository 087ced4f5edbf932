//! ciuf's errors as a Python exception tree.
//!
//! `ciuf.Error` is the base; each category of the Rust [`ciuf::Error`] has its class,
//! carrying the same message, so that an application catches what it can act on:
//! `SqlError` (fix the query), `SchemaError` (fix the event), `ConstraintError` (the
//! data's rules), `ConnectionError` (a source database), `EvaluationError` (a view met a
//! value its SQL cannot compute), `StateError` (a durable engine's state directory),
//! `InternalError` (a bug).

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(ciuf, Error, PyException, "Any error ciuf reports.");
pyo3::create_exception!(
    ciuf,
    SqlError,
    Error,
    "The SQL text cannot become a view or statement. `kind` names the problem; `line` and \
     `column` locate it when known; `suggestion` is the nearest known name."
);
pyo3::create_exception!(
    ciuf,
    SchemaError,
    Error,
    "A change does not fit its table: unknown table or column, wrong number of values, wrong type."
);
pyo3::create_exception!(
    ciuf,
    ConstraintError,
    Error,
    "A change breaks a rule of its table: duplicate primary key, NULL in a NOT NULL column, \
     update or delete of a row that is not there."
);
pyo3::create_exception!(
    ciuf,
    ConnectionError,
    Error,
    "A source database or file failed. `retryable` says whether trying again may succeed."
);
pyo3::create_exception!(
    ciuf,
    EvaluationError,
    Error,
    "A view met a value its SQL cannot compute (an integer overflow in sum(), say): that view \
     stops with the reason, the others go on; registering it again computes it afresh."
);
pyo3::create_exception!(
    ciuf,
    StateError,
    Error,
    "A durable engine's state directory cannot be read or written: damaged (the message says \
     how to start over), of another format, in use by another process, or out of space. \
     `retryable` says whether trying again may succeed."
);
pyo3::create_exception!(ciuf, InternalError, Error, "A bug in ciuf; the engine refuses further work after one.");

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("SqlError", py.get_type::<SqlError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("ConstraintError", py.get_type::<ConstraintError>())?;
    m.add("ConnectionError", py.get_type::<ConnectionError>())?;
    m.add("EvaluationError", py.get_type::<EvaluationError>())?;
    m.add("StateError", py.get_type::<StateError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}

/// A Rust error as the Python exception of its category, with its details as attributes.
pub fn to_py(py: Python<'_>, error: ciuf::Error) -> PyErr {
    let message = error.to_string();
    match error {
        ciuf::Error::Sql(e) => {
            let err = SqlError::new_err(message);
            let value = err.value(py);
            let kind = match e.kind {
                ciuf::SqlErrorKind::Syntax => "syntax",
                ciuf::SqlErrorKind::Unsupported => "unsupported",
                ciuf::SqlErrorKind::UnknownTable => "unknown_table",
                ciuf::SqlErrorKind::UnknownColumn => "unknown_column",
                ciuf::SqlErrorKind::AmbiguousColumn => "ambiguous_column",
                ciuf::SqlErrorKind::Type => "type",
                ciuf::SqlErrorKind::Catalog => "catalog",
                ciuf::SqlErrorKind::Invalid => "invalid",
            };
            // Setting attributes on a fresh exception instance cannot fail in practice;
            // if it did, the exception still carries its message.
            let _ = value.setattr("kind", kind);
            let _ = value.setattr("line", e.position.map(|p| p.line));
            let _ = value.setattr("column", e.position.map(|p| p.column));
            let _ = value.setattr("suggestion", e.suggestion);
            err
        }
        ciuf::Error::Schema(_) => SchemaError::new_err(message),
        ciuf::Error::Constraint(_) => ConstraintError::new_err(message),
        ciuf::Error::Source { retryable, .. } => {
            let err = ConnectionError::new_err(message);
            let _ = err.value(py).setattr("retryable", retryable);
            err
        }
        ciuf::Error::Evaluation { .. } => EvaluationError::new_err(message),
        ciuf::Error::State { retryable, .. } => {
            let err = StateError::new_err(message);
            let _ = err.value(py).setattr("retryable", retryable);
            err
        }
        ciuf::Error::Internal(_) => InternalError::new_err(message),
    }
}

/// Converts `ciuf::Result`s into `PyResult`s.
pub trait IntoPy<T> {
    /// The value, or the error as its Python exception.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for ciuf::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
