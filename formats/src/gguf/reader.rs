//! [`GgufFile`]: the header and metadata parser and the owned file.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use super::cursor::Cursor;
use super::tensor::{self, TensorInfo};
use super::{
    Array, DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufError, KEY_ALIGNMENT, KEY_ARCHITECTURE,
    MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_KEY_LEN, MAX_STRING_LEN, Value, ValueType,
};

/// Fewest bytes a key/value pair takes: an empty key's length, the type id,
/// a one-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;

/// The file's bytes, kept alive for zero-copy tensor slices.
enum Storage {
    Mmap(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file that owns its bytes (a memory map or a vector).
///
/// Everything was validated at parse time: counts, strings, alignment, tensor
/// shapes and that every tensor's data lies inside the file without overlap.
pub struct GgufFile {
    storage: Storage,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("len", &self.bytes().len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps the file at `path` and parses it.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let io_err = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        if file.metadata().map_err(io_err)?.len() == 0 {
            return Err(GgufError::Empty);
        }
        // SAFETY: the map is read-only and lives as long as `self`. As with any
        // mmap, another process truncating or rewriting the file while it is
        // mapped could change or fault the bytes under us; model files are not
        // edited in place while loaded, and this is the accepted cost of
        // zero-copy loading (llama.cpp makes the same trade).
        let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
        Self::parse(Storage::Mmap(map))
    }

    /// Parses a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GgufError> {
        Self::parse(Storage::Owned(bytes))
    }

    fn parse(storage: Storage) -> Result<Self, GgufError> {
        let p = parse(storage.bytes())?;
        Ok(Self {
            storage,
            version: p.version,
            alignment: p.alignment,
            data_offset: p.data_offset,
            metadata: p.metadata,
            key_index: p.key_index,
            tensors: p.tensors,
            tensor_index: p.tensor_index,
        })
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment: `general.alignment`, or 32 when absent.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the tensor data section. With no tensors and no
    /// padding written after the header, this is the file length.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All key/value pairs, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = *self.key_index.get(key)?;
        self.metadata.get(i).map(|(_, v)| v)
    }

    /// The string value of `key`.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// The value of `key` if it is an integer of any type that fits a u32.
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        self.get(key)?.as_u32()
    }

    /// The value of `key` if it is an integer of any type that fits a u64.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    /// The value of `key` if it is an F32 (or an F64, rounded).
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key)?.as_f32()
    }

    /// The bool value of `key`.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// The array value of `key`.
    pub fn get_array(&self, key: &str) -> Option<&Array> {
        self.get(key)?.as_array()
    }

    /// `general.architecture` ("llama", "qwen2", ...).
    pub fn architecture(&self) -> Option<&str> {
        self.get_str(KEY_ARCHITECTURE)
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        let i = *self.tensor_index.get(name)?;
        self.tensors.get(i)
    }

    /// The raw bytes of tensor `t`, borrowed from the file. For a `TensorInfo`
    /// taken from another file whose range lies outside this one, the slice is
    /// empty.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let start = self.data_offset.saturating_add(t.offset);
        let end = start.saturating_add(t.n_bytes);
        match (usize::try_from(start), usize::try_from(end)) {
            (Ok(s), Ok(e)) => self.bytes().get(s..e).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }
}

/// What the parser found, before it is joined to the storage.
struct Parsed {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

fn parse(bytes: &[u8]) -> Result<Parsed, GgufError> {
    if bytes.is_empty() {
        return Err(GgufError::Empty);
    }
    let mut c = Cursor::new(bytes);
    let magic = c.take(4, &|| "magic".to_owned())?;
    if magic != GGUF_MAGIC {
        let mut found = [0u8; 4];
        found.copy_from_slice(magic);
        return Err(GgufError::BadMagic { found });
    }
    let version = c.u32(&|| "version".to_owned())?;
    check_version(version)?;
    let tensor_count_offset = c.offset();
    let tensor_count = c.u64(&|| "tensor_count".to_owned())?;
    let kv_count_offset = c.offset();
    let kv_count = c.u64(&|| "kv_count".to_owned())?;
    let min_tensor = tensor::MIN_TENSOR_INFO_SIZE;
    check_count(
        "kv_count",
        kv_count_offset,
        kv_count,
        MIN_KV_SIZE,
        c.remaining(),
    )?;
    check_count(
        "tensor_count",
        tensor_count_offset,
        tensor_count,
        min_tensor,
        c.remaining(),
    )?;

    let kvs = read_kvs(&mut c, kv_count)?;
    let alignment = match kvs.key_index.get(KEY_ALIGNMENT) {
        Some(&i) => match (kvs.metadata.get(i), kvs.value_offsets.get(i)) {
            (Some((_, v)), Some(&off)) => check_alignment(v, off)?,
            _ => DEFAULT_ALIGNMENT,
        },
        None => DEFAULT_ALIGNMENT,
    };

    // Checked again now that the key/values have used their share of the bytes.
    check_count(
        "tensor_count",
        tensor_count_offset,
        tensor_count,
        min_tensor,
        c.remaining(),
    )?;
    let (tensors, tensor_index) = tensor::read_infos(&mut c, tensor_count, alignment)?;

    let file_len = bytes.len() as u64;
    // alignment <= 1 MiB and the offset is a file position, so this cannot overflow.
    let aligned = c.offset().div_ceil(alignment) * alignment;
    // A file without tensors may end right after its header, padding or not.
    let data_offset = if tensors.is_empty() {
        aligned.min(file_len)
    } else {
        aligned
    };
    tensor::check_layout(&tensors, data_offset, file_len)?;

    Ok(Parsed {
        version,
        alignment,
        data_offset,
        metadata: kvs.metadata,
        key_index: kvs.key_index,
        tensors,
        tensor_index,
    })
}

fn check_version(version: u32) -> Result<(), GgufError> {
    let hint = match version {
        2 | 3 => return Ok(()),
        1 => "; GGUF v1 used 32-bit counts and is no longer read",
        v if (1..=3).contains(&v.swap_bytes()) => {
            "; the version is byte-swapped, so this looks like a big-endian file, which is not supported"
        }
        _ => "",
    };
    Err(GgufError::UnsupportedVersion { version, hint })
}

/// Rejects a count of items that cannot all fit in the bytes left, so that
/// the count can then safely size an allocation.
fn check_count(
    field: &'static str,
    offset: u64,
    count: u64,
    min_size: u64,
    available: u64,
) -> Result<(), GgufError> {
    let max = available / min_size;
    if count > max {
        return Err(GgufError::CountTooLarge {
            field,
            offset,
            count,
            max,
            available,
        });
    }
    Ok(())
}

/// Validates a `general.alignment` value stored at `offset` and returns it.
pub(crate) fn check_alignment(value: &Value, offset: u64) -> Result<u64, GgufError> {
    let Value::U32(a) = *value else {
        return Err(GgufError::AlignmentWrongType {
            offset,
            found: value.value_type(),
        });
    };
    let value = u64::from(a);
    if value == 0 {
        return Err(GgufError::AlignmentZero { offset });
    }
    if !value.is_power_of_two() {
        return Err(GgufError::AlignmentNotPowerOfTwo { offset, value });
    }
    if value > MAX_ALIGNMENT {
        return Err(GgufError::AlignmentTooLarge {
            offset,
            value,
            max: MAX_ALIGNMENT,
        });
    }
    Ok(value)
}

struct Kvs {
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    value_offsets: Vec<u64>,
}

fn read_kvs(c: &mut Cursor<'_>, kv_count: u64) -> Result<Kvs, GgufError> {
    // kv_count was checked against the bytes left, so it bounds this allocation.
    let n = usize::try_from(kv_count).unwrap_or(0);
    let mut metadata = Vec::with_capacity(n);
    let mut key_index = HashMap::with_capacity(n);
    let mut key_offsets = Vec::with_capacity(n);
    let mut value_offsets = Vec::with_capacity(n);
    for i in 0..kv_count {
        let key_offset = c.offset();
        let key = read_string(c, MAX_KEY_LEN, &|| format!("key of key/value pair {i}"))?;
        if let Some(&first) = key_index.get(key) {
            let first_offset = key_offsets.get(first).copied().unwrap_or(0);
            return Err(GgufError::DuplicateKey {
                key: key.to_owned(),
                offset: key_offset,
                first_offset,
            });
        }
        let type_offset = c.offset();
        let id = c.u32(&|| format!("{key}: value type"))?;
        let ty = ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
            field: key.to_owned(),
            offset: type_offset,
            value: id,
            max: ValueType::MAX_ID,
        })?;
        value_offsets.push(c.offset());
        let value = read_value(c, ty, key, 0)?;
        key_index.insert(key.to_owned(), metadata.len());
        key_offsets.push(key_offset);
        metadata.push((key.to_owned(), value));
    }
    Ok(Kvs {
        metadata,
        key_index,
        value_offsets,
    })
}

/// Reads a u64 length and that many UTF-8 bytes, the length checked against
/// `cap` and the bytes left before anything is read.
fn read_string<'a>(
    c: &mut Cursor<'a>,
    cap: u64,
    field: &dyn Fn() -> String,
) -> Result<&'a str, GgufError> {
    let offset = c.offset();
    let len = c.u64(field)?;
    if len > cap {
        return Err(GgufError::StringTooLong {
            field: field(),
            offset,
            len,
            max: cap,
        });
    }
    let available = c.remaining();
    if len > available {
        return Err(GgufError::StringPastEnd {
            field: field(),
            offset,
            len,
            available,
        });
    }
    c.utf8(len, field)
}

/// Reads one value of type `ty`; `depth` is the nesting depth of the array
/// holding it (0 at the top level).
fn read_value(
    c: &mut Cursor<'_>,
    ty: ValueType,
    key: &str,
    depth: usize,
) -> Result<Value, GgufError> {
    let f = || key.to_owned();
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8(&f)?),
        ValueType::I8 => Value::I8(c.u8(&f)? as i8),
        ValueType::U16 => Value::U16(c.u16(&f)?),
        ValueType::I16 => Value::I16(c.u16(&f)? as i16),
        ValueType::U32 => Value::U32(c.u32(&f)?),
        ValueType::I32 => Value::I32(c.u32(&f)? as i32),
        ValueType::F32 => Value::F32(f32::from_bits(c.u32(&f)?)),
        ValueType::U64 => Value::U64(c.u64(&f)?),
        ValueType::I64 => Value::I64(c.u64(&f)? as i64),
        ValueType::F64 => Value::F64(f64::from_bits(c.u64(&f)?)),
        ValueType::Bool => {
            let offset = c.offset();
            match c.u8(&f)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                value => {
                    return Err(GgufError::InvalidBool {
                        field: f(),
                        offset,
                        value,
                    });
                }
            }
        }
        ValueType::String => Value::String(read_string(c, MAX_STRING_LEN, &f)?.to_owned()),
        ValueType::Array => Value::Array(read_array(c, key, depth + 1)?),
    })
}

/// Reads an array at nesting depth `depth` (1 for a top-level array).
fn read_array(c: &mut Cursor<'_>, key: &str, depth: usize) -> Result<Array, GgufError> {
    let f = || key.to_owned();
    let type_offset = c.offset();
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            field: f(),
            offset: type_offset,
            depth,
            max: MAX_ARRAY_DEPTH,
        });
    }
    let id = c.u32(&f)?;
    let elem_type = ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
        field: f(),
        offset: type_offset,
        value: id,
        max: ValueType::MAX_ID,
    })?;
    let count_offset = c.offset();
    let count = c.u64(&f)?;
    if count > MAX_ARRAY_LEN {
        return Err(GgufError::ArrayTooLong {
            field: f(),
            offset: count_offset,
            count,
            max: MAX_ARRAY_LEN,
        });
    }
    let min_elem_size = elem_type.min_encoded_size();
    let available = c.remaining();
    if count.saturating_mul(min_elem_size) > available {
        return Err(GgufError::ArrayPastEnd {
            field: f(),
            offset: count_offset,
            count,
            elem_type,
            min_elem_size,
            available,
        });
    }
    // count <= MAX_ARRAY_LEN and count * min size <= bytes left: a safe capacity.
    let mut items = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        items.push(read_value(c, elem_type, key, depth)?);
    }
    Ok(Array { elem_type, items })
}
