//! `Frame`: a view's rows as Arrow, handed to Python.
//!
//! A frame holds one Arrow `RecordBatch` (shared, never copied) and gives it away
//! through the Arrow PyCapsule interface (`__arrow_c_stream__`, `__arrow_c_array__`,
//! `__arrow_c_schema__`): `pyarrow.table(frame)`, `polars.DataFrame(frame)`, DuckDB and
//! pandas read its buffers in place. `to_dicts()` and `to_dict()` build plain Python
//! rows without any of those libraries, for JSON responses.

use std::ffi::CStr;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{Array, RecordBatch, RecordBatchIterator, StructArray};
use pyo3::exceptions::{PyImportError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList, PyString, PyTuple};

use crate::values::column_to_py;

/// A view's rows at one moment, as an Arrow record batch.
#[derive(Debug)]
#[pyclass(module = "ciuf", frozen)]
pub struct Frame {
    pub(crate) batch: RecordBatch,
}

fn capsule<'py, T: Send + 'static>(py: Python<'py>, value: T, name: &'static CStr) -> PyResult<Bound<'py, PyCapsule>> {
    PyCapsule::new_with_value(py, value, name)
}

fn import<'py>(py: Python<'py>, module: &str, method: &str) -> PyResult<Bound<'py, PyModule>> {
    py.import(module).map_err(|_| {
        PyImportError::new_err(format!(
            "Frame.{method}() needs {module}: pip install {module} (to_dicts() needs nothing)"
        ))
    })
}

#[pymethods]
impl Frame {
    /// The Arrow C stream of this frame's one batch (Arrow PyCapsule interface).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The schema is fixed; a consumer asking for another casts on its side.
        let _ = requested_schema;
        let schema = self.batch.schema();
        let reader = RecordBatchIterator::new([Ok(self.batch.clone())], schema);
        capsule(py, FFI_ArrowArrayStream::new(Box::new(reader)), c"arrow_array_stream")
    }

    /// The Arrow C schema of this frame (Arrow PyCapsule interface).
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        let schema = FFI_ArrowSchema::try_from(self.batch.schema().as_ref())
            .map_err(|e| PyValueError::new_err(format!("cannot export the schema: {e}")))?;
        capsule(py, schema, c"arrow_schema")
    }

    /// The batch as one Arrow C struct array with its schema (Arrow PyCapsule interface).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let _ = requested_schema;
        let array = StructArray::from(self.batch.clone());
        let schema = FFI_ArrowSchema::try_from(array.data_type())
            .map_err(|e| PyValueError::new_err(format!("cannot export the schema: {e}")))?;
        let data = FFI_ArrowArray::new(&array.to_data());
        PyTuple::new(
            py,
            [capsule(py, schema, c"arrow_schema")?.into_any(), capsule(py, data, c"arrow_array")?.into_any()],
        )
    }

    /// The column names.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.batch.schema().fields().iter().map(|f| f.name().clone()).collect()
    }

    /// The number of rows.
    fn __len__(&self) -> usize {
        self.batch.num_rows()
    }

    /// The number of rows.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// A `pyarrow.Table` over the same buffers (needs pyarrow).
    fn to_arrow<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        import(slf.py(), "pyarrow", "to_arrow")?.call_method1("table", (slf,))
    }

    /// A `polars.DataFrame` (needs polars; numbers are not copied).
    fn to_polars<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        import(slf.py(), "polars", "to_polars")?.call_method1("DataFrame", (slf,))
    }

    /// A `pandas.DataFrame` (needs pandas and pyarrow).
    fn to_pandas<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        import(slf.py(), "pandas", "to_pandas")?;
        Frame::to_arrow(slf)?.call_method0("to_pandas")
    }

    /// The rows as a list of dicts (column name to value); needs no other library.
    fn to_dicts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let names: Vec<Bound<'py, PyAny>> =
            self.columns().into_iter().map(|n| PyString::new(py, &n).into_any()).collect();
        let columns = self.py_columns(py)?;
        let rows = (0..self.batch.num_rows())
            .map(|i| {
                let d = PyDict::new(py);
                for (name, col) in names.iter().zip(&columns) {
                    d.set_item(name, &col[i])?;
                }
                Ok(d)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }

    /// The rows as pandas' `DataFrame.to_dict` gives them: `"dict"` (column to
    /// {index: value}), `"list"` (column to list of values) or `"records"` (a list of
    /// dicts, one per row).
    #[pyo3(signature = (orient="dict"))]
    fn to_dict<'py>(&self, py: Python<'py>, orient: &str) -> PyResult<Bound<'py, PyAny>> {
        match orient {
            "records" => self.to_dicts(py).map(Bound::into_any),
            "list" | "dict" => {
                let out = PyDict::new(py);
                for (name, col) in self.columns().into_iter().zip(self.py_columns(py)?) {
                    if orient == "list" {
                        out.set_item(name, PyList::new(py, col)?)?;
                    } else {
                        let by_index = PyDict::new(py);
                        for (i, v) in col.into_iter().enumerate() {
                            by_index.set_item(i, v)?;
                        }
                        out.set_item(name, by_index)?;
                    }
                }
                Ok(out.into_any())
            }
            other => Err(PyValueError::new_err(format!("orient must be 'dict', 'list' or 'records', not {other:?}"))),
        }
    }

    /// The rows as tuples, in column order.
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let columns = self.py_columns(py)?;
        let rows = (0..self.batch.num_rows())
            .map(|i| PyTuple::new(py, columns.iter().map(|c| &c[i])))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }

    fn __repr__(&self) -> String {
        let fields: Vec<String> =
            self.batch.schema().fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect();
        format!("<ciuf.Frame {} rows [{}]>", self.batch.num_rows(), fields.join(", "))
    }
}

impl Frame {
    fn py_columns<'py>(&self, py: Python<'py>) -> PyResult<Vec<Vec<Bound<'py, PyAny>>>> {
        self.batch.columns().iter().map(|c| column_to_py(py, c.as_ref())).collect()
    }
}
