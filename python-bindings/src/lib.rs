//! `ciuf._ciuf`: the native module of the `ciuf` Python package.
//!
//! The package (`python-bindings/python/ciuf`) re-exports what this module defines and
//! adds the pure-Python parts (SQLAlchemy tracking, framework glue). The module holds
//! no state of its own: an `Engine` is the Rust [`ciuf::Engine`], shared by the Python
//! threads that hold it.

mod alloc;
mod engine;
mod errors;
mod frame;
mod values;

use pyo3::prelude::*;

#[pymodule]
fn _ciuf(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_class::<engine::View>()?;
    m.add_class::<frame::Frame>()?;
    m.add_function(wrap_pyfunction!(engine::from_sql, m)?)?;
    m.add_function(wrap_pyfunction!(engine::_close_sources, m)?)?;
    m.add_function(wrap_pyfunction!(engine::set_memory_budget, m)?)?;
    m.add_function(wrap_pyfunction!(engine::memory_budget, m)?)?;
    m.add_function(wrap_pyfunction!(engine::drop_state, m)?)?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
