//! Views as polars DataFrames (cargo feature `polars`).
//!
//! polars has its own Arrow implementation, so each column of the view's Arrow batch
//! crosses through the Arrow C Data Interface: exported by arrow-rs, imported by
//! polars-arrow. Numeric buffers are shared, not copied; text is copied once into
//! polars' string layout.

use arrow_array::{Array, RecordBatch};
use polars_core::frame::DataFrame;
use polars_core::prelude::{Column, Series};

use crate::error::{Error, Result};

fn polars_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("converting to polars: {e}"))
}

/// The batch as a DataFrame.
pub fn batch_to_dataframe(batch: &RecordBatch) -> Result<DataFrame> {
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let (ffi_array, ffi_schema) = arrow_array::ffi::to_ffi(&array.to_data()).map_err(polars_error)?;
        // SAFETY: both pairs of types are the C Data Interface's ArrowArray and
        // ArrowSchema (`#[repr(C)]`, same fields); ownership (the release callback)
        // moves to the polars side, which releases them when dropped.
        let (c_array, c_schema) = unsafe {
            (
                std::mem::transmute::<arrow_data::ffi::FFI_ArrowArray, polars_arrow::ffi::ArrowArray>(ffi_array),
                std::mem::transmute::<arrow_schema::ffi::FFI_ArrowSchema, polars_arrow::ffi::ArrowSchema>(ffi_schema),
            )
        };
        // SAFETY: the structures were just exported by arrow-rs and are valid.
        let imported = unsafe {
            let pl_field = polars_arrow::ffi::import_field_from_c(&c_schema).map_err(polars_error)?;
            polars_arrow::ffi::import_array_from_c(c_array, pl_field.dtype().clone()).map_err(polars_error)?
        };
        let series = Series::from_arrow(field.name().as_str().into(), imported).map_err(polars_error)?;
        columns.push(Column::from(series));
    }
    DataFrame::new(batch.num_rows(), columns).map_err(polars_error)
}
