//! Builds GGUF bytes field by field, so that tests can write files no
//! well-behaved writer would produce.

#![allow(dead_code)]

/// Raw little-endian GGUF bytes under construction.
pub struct Raw(pub Vec<u8>);

/// Value type ids as stored in files.
pub mod ty {
    pub const U8: u32 = 0;
    pub const U32: u32 = 4;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
}

impl Raw {
    /// Magic, version and the two counts.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }

    pub fn len(&self) -> u64 {
        self.0.len() as u64
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    /// A GGUF string: u64 length, then the bytes.
    pub fn str(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64).bytes(s)
    }

    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key.as_bytes()).u32(ty::U32).u32(v)
    }

    pub fn kv_str(&mut self, key: &str, v: &[u8]) -> &mut Self {
        self.str(key.as_bytes()).u32(ty::STRING).str(v)
    }

    /// A tensor info with a raw type id.
    pub fn tensor(&mut self, name: &[u8], dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }

    /// Zeros up to the next multiple of `align`.
    pub fn pad(&mut self, align: u64) -> &mut Self {
        while !self.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }

    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }

    pub fn build(&self) -> Vec<u8> {
        self.0.clone()
    }
}
