//! Tensor infos: parsing, shape rules shared with the writer, and the data
//! layout check (aligned, inside the file, no overlap).

use std::collections::HashMap;

use super::cursor::Cursor;
use super::{GgufError, GgufFile, MAX_DIMS, MAX_ELEMENTS, MAX_TENSOR_NAME_LEN};
use crate::GgmlType;

/// Fewest bytes a tensor info takes: name length, a one-byte name, n_dims,
/// one dimension, the type id and the data offset.
pub(crate) const MIN_TENSOR_INFO_SIZE: u64 = 8 + 1 + 4 + 8 + 4 + 8;

/// One tensor's description from the GGUF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor name ("blk.0.attn_q.weight").
    pub name: String,
    /// The dimensions in ggml order: ne0 (the row length, contiguous) first.
    pub dims: Vec<u64>,
    /// The element type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Number of elements (the product of `dims`).
    pub n_elements: u64,
    /// Bytes of data.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Absolute offset of the data in `file`.
    pub fn absolute_offset(&self, file: &GgufFile) -> u64 {
        file.data_offset().saturating_add(self.offset)
    }

    /// The dimensions padded with 1 to ggml's four (`ne[0..4]`).
    pub fn ne(&self) -> [u64; 4] {
        let mut ne = [1u64; 4];
        for (slot, &d) in ne.iter_mut().zip(&self.dims) {
            *slot = d;
        }
        ne
    }

    /// Number of rows: elements divided by the row length ne0.
    pub fn n_rows(&self) -> u64 {
        self.ne()[1..].iter().product()
    }
}

/// Where each field of a tensor info sits, for error messages.
pub(crate) struct InfoOffsets {
    pub(crate) n_dims: u64,
    pub(crate) dims: u64,
    pub(crate) ty: u64,
}

/// Rejects an empty name or one ggml cannot hold.
pub(crate) fn check_name_len(index: u64, offset: u64, len: u64) -> Result<(), GgufError> {
    if len == 0 {
        return Err(GgufError::TensorNameEmpty { index, offset });
    }
    if len > MAX_TENSOR_NAME_LEN {
        return Err(GgufError::TensorNameTooLong {
            index,
            offset,
            len,
            max: MAX_TENSOR_NAME_LEN,
        });
    }
    Ok(())
}

/// Checks a shape against ggml's rules and returns (elements, bytes).
pub(crate) fn check_shape(
    name: &str,
    dims: &[u64],
    ty: GgmlType,
    at: &InfoOffsets,
) -> Result<(u64, u64), GgufError> {
    check_dim_count(name, at.n_dims, dims.len())?;
    let mut n_elements: u64 = 1;
    let mut overflow = false;
    for (axis, &d) in dims.iter().enumerate() {
        if d == 0 {
            return Err(GgufError::ZeroDimension {
                tensor: name.to_owned(),
                offset: at.dims + 8 * axis as u64,
                axis,
            });
        }
        match n_elements.checked_mul(d) {
            Some(n) if n <= MAX_ELEMENTS => n_elements = n,
            _ => overflow = true,
        }
    }
    if overflow {
        return Err(GgufError::ElementCountOverflow {
            tensor: name.to_owned(),
            offset: at.dims,
            dims: dims.to_vec(),
            max: MAX_ELEMENTS,
        });
    }
    let ne0 = dims.first().copied().unwrap_or(1);
    if !ty.row_fits(ne0) {
        return Err(GgufError::RowNotBlockMultiple {
            tensor: name.to_owned(),
            offset: at.dims,
            ne0,
            ty,
            block_size: ty.block_size(),
        });
    }
    let n_bytes = ty
        .bytes_for(n_elements)
        .ok_or_else(|| GgufError::ByteSizeOverflow {
            tensor: name.to_owned(),
            offset: at.ty,
            n_elements,
            ty,
            max: u64::MAX,
        })?;
    Ok((n_elements, n_bytes))
}

fn check_dim_count(name: &str, offset: u64, n_dims: usize) -> Result<(), GgufError> {
    let n = u32::try_from(n_dims).unwrap_or(u32::MAX);
    if n == 0 || n > MAX_DIMS {
        return Err(GgufError::BadDimCount {
            tensor: name.to_owned(),
            offset,
            n_dims: n,
            max: MAX_DIMS,
        });
    }
    Ok(())
}

/// Reads `count` tensor infos (count already checked against the bytes left).
pub(crate) fn read_infos(
    c: &mut Cursor<'_>,
    count: u64,
    alignment: u64,
) -> Result<(Vec<TensorInfo>, HashMap<String, usize>), GgufError> {
    let n = usize::try_from(count).unwrap_or(0);
    let mut tensors = Vec::with_capacity(n);
    let mut index = HashMap::with_capacity(n);
    let mut name_offsets = Vec::with_capacity(n);
    for i in 0..count {
        let name_offset = c.offset();
        let field = || format!("tensor {i} name");
        let len = c.u64(&field)?;
        check_name_len(i, name_offset, len)?;
        let available = c.remaining();
        if len > available {
            return Err(GgufError::StringPastEnd {
                field: field(),
                offset: name_offset,
                len,
                available,
            });
        }
        let name = c.utf8(len, &field)?;
        if let Some(&first) = index.get(name) {
            return Err(GgufError::DuplicateTensorName {
                name: name.to_owned(),
                offset: name_offset,
                first_offset: name_offsets.get(first).copied().unwrap_or(0),
            });
        }
        let info = read_rest(c, name, alignment)?;
        index.insert(name.to_owned(), tensors.len());
        name_offsets.push(name_offset);
        tensors.push(info);
    }
    Ok((tensors, index))
}

/// Reads the fields after the name: dimensions, type and data offset.
fn read_rest(c: &mut Cursor<'_>, name: &str, alignment: u64) -> Result<TensorInfo, GgufError> {
    let field = |what: &str| format!("tensor {name:?} {what}");
    let n_dims_offset = c.offset();
    let n_dims = c.u32(&|| field("n_dims"))?;
    // Checked before the dimensions are read so that a huge count reads nothing.
    check_dim_count(
        name,
        n_dims_offset,
        usize::try_from(n_dims).unwrap_or(usize::MAX),
    )?;
    let dims_offset = c.offset();
    let mut dims = Vec::with_capacity(MAX_DIMS as usize);
    for _ in 0..n_dims {
        dims.push(c.u64(&|| field("dimension"))?);
    }
    let ty_offset = c.offset();
    let id = c.u32(&|| field("type"))?;
    let ty = GgmlType::from_id(id).ok_or_else(|| GgufError::UnknownGgmlType {
        tensor: name.to_owned(),
        offset: ty_offset,
        id,
    })?;
    let at = InfoOffsets {
        n_dims: n_dims_offset,
        dims: dims_offset,
        ty: ty_offset,
    };
    let (n_elements, n_bytes) = check_shape(name, &dims, ty, &at)?;
    let offset_offset = c.offset();
    let offset = c.u64(&|| field("data offset"))?;
    if !offset.is_multiple_of(alignment) {
        return Err(GgufError::TensorMisaligned {
            tensor: name.to_owned(),
            offset: offset_offset,
            value: offset,
            alignment,
        });
    }
    Ok(TensorInfo {
        name: name.to_owned(),
        dims,
        ty,
        offset,
        n_elements,
        n_bytes,
    })
}

/// Checks that every tensor's data lies inside the file and that no two
/// overlap. Offsets need not be in file order or contiguous (llama.cpp
/// insists on both; other writers could reasonably leave gaps).
pub(crate) fn check_layout(
    tensors: &[TensorInfo],
    data_offset: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    for t in tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        if end.is_none_or(|e| e > file_len) {
            return Err(GgufError::TensorPastEnd {
                tensor: t.name.clone(),
                offset: start.unwrap_or(u64::MAX),
                end: end.unwrap_or(u64::MAX),
                file_len,
            });
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| t.offset);
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // Both ends are inside the file (checked above), so the adds cannot overflow.
        let a_end = a.offset + a.n_bytes;
        if a_end > b.offset {
            return Err(GgufError::TensorOverlap {
                tensor: b.name.clone(),
                offset: data_offset + b.offset,
                other: a.name.clone(),
                other_end: data_offset + a_end,
            });
        }
    }
    Ok(())
}
