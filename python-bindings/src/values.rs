//! Python objects to SQL values and back.
//!
//! In: `None`, `bool`, `int`, `float`, `str`, `decimal.Decimal`, `datetime.date` and
//! `datetime.datetime` (an aware datetime is taken in UTC), and objects that behave as
//! integers or floats (`__index__`, `__float__`: NumPy scalars). Anything else is a
//! `SchemaError` that names the column and the Python type. The table then checks and
//! coerces the value to the column's type, as it does for Rust callers.
//!
//! Out: Arrow arrays of a view's batch to Python objects, for `to_dicts()`, which needs
//! neither pyarrow nor pandas.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Float64Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, types::TimestampMicrosecondType};
use arrow_schema::DataType as ArrowType;
use ciuf::core::datetime::civil_from_days;
use ciuf::{Decimal, Value};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::errors::SchemaError;

/// Python classes the conversions test for, imported once.
struct Classes {
    decimal: Py<PyType>,
    date: Py<PyType>,
    datetime: Py<PyType>,
    utc: Py<PyAny>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let datetime = py.import("datetime")?;
        Ok(Classes {
            decimal: py.import("decimal")?.getattr("Decimal")?.cast_into::<PyType>()?.unbind(),
            date: datetime.getattr("date")?.cast_into::<PyType>()?.unbind(),
            datetime: datetime.getattr("datetime")?.cast_into::<PyType>()?.unbind(),
            utc: datetime.getattr("timezone")?.getattr("utc")?.unbind(),
        })
    })
}

/// Days from 0001-01-01 (day 1 of `date.toordinal()`) to 1970-01-01.
const UNIX_EPOCH_ORDINAL: i64 = 719_163;

/// `obj` as a value for `column` (named in the error when it does not convert).
pub fn to_value(obj: &Bound<'_, PyAny>, column: &dyn std::fmt::Display) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::text(&*row_text(s, &format!("the value for column {column}"))?));
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.is_truthy()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<i64>()
            .map(Value::Int)
            .map_err(|_| SchemaError::new_err(format!("column {column}: integer {obj} is beyond BIGINT's range")));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    let py = obj.py();
    let c = classes(py)?;
    if obj.is_instance(c.decimal.bind(py))? {
        let text: String = obj.call_method1("__format__", ("f",))?.extract()?;
        return Decimal::parse(&text).map(Value::from).ok_or_else(|| {
            SchemaError::new_err(format!("column {column}: decimal {text} is not a finite number ciuf can hold"))
        });
    }
    if obj.is_instance(c.datetime.bind(py))? {
        let naive = if obj.getattr("tzinfo")?.is_none() {
            obj.clone()
        } else {
            obj.call_method1("astimezone", (c.utc.bind(py),))?
        };
        let days = naive.call_method0("toordinal")?.extract::<i64>()? - UNIX_EPOCH_ORDINAL;
        let part = |name: &str| -> PyResult<i64> { naive.getattr(name)?.extract::<i64>() };
        let seconds = part("hour")? * 3600 + part("minute")? * 60 + part("second")?;
        return Ok(Value::Timestamp((days * 86_400 + seconds) * 1_000_000 + part("microsecond")?));
    }
    if obj.is_instance(c.date.bind(py))? {
        let days = obj.call_method0("toordinal")?.extract::<i64>()? - UNIX_EPOCH_ORDINAL;
        return Ok(Value::Date(days as i32));
    }
    if obj.hasattr("__index__")? {
        return Ok(Value::Int(obj.extract::<i64>()?));
    }
    if obj.hasattr("__float__")? && !obj.is_instance_of::<PyString>() {
        return Ok(Value::Float(obj.extract::<f64>()?));
    }
    Err(SchemaError::new_err(format!(
        "column {column}: a Python {} is not a SQL value (use None, bool, int, float, str, Decimal, date or datetime)",
        obj.get_type().name()?
    )))
}

/// A row given as a dict (by column name) or a sequence (in column order).
pub fn to_row(obj: &Bound<'_, PyAny>) -> PyResult<ciuf::RowData> {
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut named = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let name = k
                .cast::<PyString>()
                .map_err(|_| {
                    SchemaError::new_err(format!(
                        "a row's keys are column names, not {}",
                        k.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                    ))
                })
                .and_then(|k| row_text(k, "a row's column name").map(|t| t.into_owned()))?;
            let value = to_value(&v, &name)?;
            named.push((name, value));
        }
        return Ok(ciuf::RowData::Named(named));
    }
    if obj.is_instance_of::<PyTuple>() || obj.is_instance_of::<PyList>() {
        return obj
            .try_iter()?
            .enumerate()
            .map(|(i, v)| to_value(&v?, &Ordinal(i)))
            .collect::<PyResult<_>>()
            .map(ciuf::RowData::Values);
    }
    Err(SchemaError::new_err(format!(
        "a row is a dict of column values or a list/tuple of values in column order, not a {}",
        obj.get_type().name()?
    )))
}

/// A column known only by its position in a row.
struct Ordinal(usize);

impl std::fmt::Display for Ordinal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0 + 1)
    }
}

/// Every value of an Arrow column of a view as Python objects.
pub fn column_to_py<'py>(py: Python<'py>, array: &dyn Array) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    let none = || py.None().into_bound(py);
    macro_rules! each {
        ($values:expr, $convert:expr) => {
            for v in $values {
                out.push(match v {
                    None => none(),
                    Some(v) => $convert(v)?,
                });
            }
        };
    }
    match array.data_type() {
        ArrowType::Null => out.extend((0..n).map(|_| none())),
        ArrowType::Boolean => {
            each!(array.as_boolean().iter(), |v: bool| PyResult::Ok(PyBool::new(py, v).to_owned().into_any()))
        }
        ArrowType::Int16 => {
            each!(array.as_primitive::<Int16Type>().iter(), |v: i16| v.into_pyobject(py).map(Bound::into_any))
        }
        ArrowType::Int32 => {
            each!(array.as_primitive::<Int32Type>().iter(), |v: i32| v.into_pyobject(py).map(Bound::into_any))
        }
        ArrowType::Int64 => {
            each!(array.as_primitive::<Int64Type>().iter(), |v: i64| v.into_pyobject(py).map(Bound::into_any))
        }
        ArrowType::Float64 => {
            each!(array.as_primitive::<Float64Type>().iter(), |v: f64| PyResult::Ok(PyFloat::new(py, v).into_any()))
        }
        ArrowType::Utf8 => {
            each!(array.as_string::<i32>().iter(), |v: &str| PyResult::Ok(PyString::new(py, v).into_any()))
        }
        ArrowType::Decimal128(_, scale) => {
            let decimal = classes(py)?.decimal.bind(py);
            let scale = *scale as u8;
            each!(array.as_primitive::<Decimal128Type>().iter(), |m: i128| {
                let text = Decimal::new(m, scale).map_or_else(|| m.to_string(), |d| d.to_string());
                decimal.call1((text,))
            })
        }
        ArrowType::Date32 => {
            let date = classes(py)?.date.bind(py);
            each!(array.as_primitive::<Date32Type>().iter(), |d: i32| {
                let (y, m, day) = civil_from_days(i64::from(d));
                date.call1((y, m, day)).map_err(|_| beyond_python(&format!("DATE {y:04}-{m:02}-{day:02}")))
            })
        }
        ArrowType::Timestamp(_, _) => {
            let datetime = classes(py)?.datetime.bind(py);
            each!(array.as_primitive::<TimestampMicrosecondType>().iter(), |us: i64| {
                let (days, rest) = (us.div_euclid(86_400_000_000), us.rem_euclid(86_400_000_000));
                let (y, m, d) = civil_from_days(days);
                let secs = rest / 1_000_000;
                datetime
                    .call1((y, m, d, secs / 3600, (secs / 60) % 60, secs % 60, rest % 1_000_000))
                    .map_err(|_| beyond_python(&format!("TIMESTAMP of {y:04}-{m:02}-{d:02}")))
            })
        }
        other => {
            return Err(crate::errors::InternalError::new_err(format!(
                "a view column of Arrow type {other} has no Python form"
            )));
        }
    }
    Ok(out)
}

/// A value Python's `datetime` cannot hold (its years are 1 to 9999), as ciuf's error.
fn beyond_python(what: &str) -> PyErr {
    crate::errors::Error::new_err(format!(
        "{what} is beyond what Python's datetime can hold (years 1 to 9999): read the view as Arrow instead"
    ))
}

/// A `str` argument (SQL, a table or view name). Text that has no UTF-8 form — a lone
/// surrogate such as `"\ud800"` — is refused as `ciuf.SqlError` with what it was,
/// rather than escaping as Python's `UnicodeEncodeError`; anything but a `str` is a
/// `TypeError`, as for any other argument.
#[derive(Debug)]
pub struct Text(pub String);

impl<'a, 'py> FromPyObject<'a, 'py> for Text {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let s = obj.cast::<PyString>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "expected str, got {}",
                obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?;
        text_of(&s, "the text").map(|t| Text(t.into_owned()))
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The UTF-8 of a `str` in a row (a value or a column name), or `SchemaError` (fix the
/// event) naming `what` when it holds a lone surrogate.
fn row_text<'a>(s: &'a Bound<'_, PyString>, what: &str) -> PyResult<std::borrow::Cow<'a, str>> {
    s.to_cow().map_err(|_| crate::errors::SchemaError::new_err(not_unicode(what)))
}

fn not_unicode(what: &str) -> String {
    format!("{what} is not valid Unicode: it holds a lone surrogate (a str from undecodable bytes?)")
}

/// The UTF-8 of a Python `str`, or `SqlError` naming `what` when it holds a lone
/// surrogate (which UTF-8 cannot encode).
fn text_of<'a>(s: &'a Bound<'_, PyString>, what: &str) -> PyResult<std::borrow::Cow<'a, str>> {
    s.to_cow().map_err(|_| crate::errors::SqlError::new_err(not_unicode(what)))
}
