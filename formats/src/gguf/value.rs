//! GGUF metadata values: the 13 value types and typed accessors.

use std::fmt;

/// A GGUF metadata value type, with the id stored in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ValueType {
    /// `GGUF_METADATA_VALUE_TYPE_UINT8`
    U8 = 0,
    /// `GGUF_METADATA_VALUE_TYPE_INT8`
    I8 = 1,
    /// `GGUF_METADATA_VALUE_TYPE_UINT16`
    U16 = 2,
    /// `GGUF_METADATA_VALUE_TYPE_INT16`
    I16 = 3,
    /// `GGUF_METADATA_VALUE_TYPE_UINT32`
    U32 = 4,
    /// `GGUF_METADATA_VALUE_TYPE_INT32`
    I32 = 5,
    /// `GGUF_METADATA_VALUE_TYPE_FLOAT32`
    F32 = 6,
    /// `GGUF_METADATA_VALUE_TYPE_BOOL` (one byte, 0 or 1)
    Bool = 7,
    /// `GGUF_METADATA_VALUE_TYPE_STRING` (u64 length, UTF-8 bytes)
    String = 8,
    /// `GGUF_METADATA_VALUE_TYPE_ARRAY` (u32 element type, u64 count, elements)
    Array = 9,
    /// `GGUF_METADATA_VALUE_TYPE_UINT64`
    U64 = 10,
    /// `GGUF_METADATA_VALUE_TYPE_INT64`
    I64 = 11,
    /// `GGUF_METADATA_VALUE_TYPE_FLOAT64`
    F64 = 12,
}

/// Every value type, in id order.
pub const ALL_VALUE_TYPES: [ValueType; 13] = [
    ValueType::U8,
    ValueType::I8,
    ValueType::U16,
    ValueType::I16,
    ValueType::U32,
    ValueType::I32,
    ValueType::F32,
    ValueType::Bool,
    ValueType::String,
    ValueType::Array,
    ValueType::U64,
    ValueType::I64,
    ValueType::F64,
];

impl ValueType {
    /// Largest id a file may use.
    pub const MAX_ID: u32 = 12;

    /// The type with this id, or `None` for an id GGUF does not define.
    pub fn from_id(id: u32) -> Option<Self> {
        ALL_VALUE_TYPES.get(usize::try_from(id).ok()?).copied()
    }

    /// The id stored in files.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// A short lower-case name: "u8", "f32", "bool", "string", "array", ...
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }

    /// The fewest bytes one value of this type takes in a file: the size of a
    /// scalar, a string's length prefix, an array's type and count. Counts read
    /// from a file are checked against this before anything is allocated.
    pub fn min_encoded_size(self) -> u64 {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A GGUF array: its declared element type and its elements.
///
/// Every item has type `elem_type` (the reader guarantees it; the writer
/// checks it). Nested arrays each carry their own element type.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The element type written in the file.
    pub elem_type: ValueType,
    /// The elements, in file order.
    pub items: Vec<Value>,
}

impl Array {
    /// An array of `items`, all of type `elem_type`.
    pub fn new(elem_type: ValueType, items: Vec<Value>) -> Self {
        Self { elem_type, items }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The elements as strings, or `None` if this is not an array of strings.
    pub fn strings(&self) -> Option<Vec<&str>> {
        self.items.iter().map(Value::as_str).collect()
    }
}

/// One GGUF metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// f32
    F32(f32),
    /// bool
    Bool(bool),
    /// UTF-8 string
    String(String),
    /// array of values of one type
    Array(Array),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

impl Value {
    /// The type this value is stored as.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any integer type whose value is non-negative, as u64. Writers disagree on
    /// integer widths (u32 vs i32 vs u64 for the same key), so readers of
    /// hyperparameters should not insist on one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type whose value fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type whose value fits a u32.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// An F32 or F64 value, as f64 (integers are not converted).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// An F32 value, or an F64 value rounded to f32.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            // Rounding is the point: some writers store f32 hyperparameters as f64.
            Value::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// A Bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// A String value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// An Array value.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<Array> for Value {
    fn from(a: Array) -> Self {
        Value::Array(a)
    }
}

macro_rules! value_from_scalar {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(x: $t) -> Self {
                Value::$v(x)
            }
        })*
    };
}

value_from_scalar!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
    f32 => F32, bool => Bool, u64 => U64, i64 => I64, f64 => F64,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for (i, t) in ALL_VALUE_TYPES.iter().enumerate() {
            assert_eq!(t.id() as usize, i);
            assert_eq!(ValueType::from_id(t.id()), Some(*t));
        }
        assert_eq!(ValueType::from_id(13), None);
        assert_eq!(ValueType::from_id(u32::MAX), None);
    }

    #[test]
    fn integer_accessors_accept_any_width_that_fits() {
        assert_eq!(Value::I32(7).as_u32(), Some(7));
        assert_eq!(Value::I32(-1).as_u32(), None);
        assert_eq!(Value::U64(1 << 40).as_u32(), None);
        assert_eq!(Value::U64(1 << 40).as_u64(), Some(1 << 40));
        assert_eq!(Value::U64(u64::MAX).as_i64(), None);
        assert_eq!(Value::I8(-3).as_i64(), Some(-3));
        assert_eq!(Value::F32(1.0).as_u64(), None);
        assert_eq!(Value::F64(0.5).as_f32(), Some(0.5));
        assert_eq!(Value::U8(1).as_bool(), None);
    }
}
