//! Typed access to one column of a span batch, with an error naming the column when it
//! is missing or of another type.

use arrow::array::{AsArray, FixedSizeBinaryArray, Int8Array, Int64Array, RecordBatch};
use arrow::datatypes::{Int8Type, Int64Type};

use crate::error::StorageError;

/// The fixed-size binary column `name` (trace and span ids).
///
/// # Errors
/// When the column is missing or not fixed-size binary.
pub fn fixed_binary_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a FixedSizeBinaryArray, StorageError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_fixed_size_binary_opt())
        .ok_or_else(|| StorageError::schema(name, "fixed-size binary"))
}

/// The `Int64` column `name` (times).
///
/// # Errors
/// When the column is missing or not `Int64`.
pub fn int64_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a Int64Array, StorageError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| StorageError::schema(name, "Int64"))
}

/// The `Int8` column `name` (kind, status code).
///
/// # Errors
/// When the column is missing or not `Int8`.
pub fn int8_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Int8Array, StorageError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int8Type>())
        .ok_or_else(|| StorageError::schema(name, "Int8"))
}
