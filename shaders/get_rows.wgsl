// get_rows: dst[r, :] = dequantize(weight[ids[r], :]), the embedding lookup.
//
// weight is n_rows rows of n_cols elements in a GGUF type (TYPE, ggml's type
// id, an override constant: one pipeline per type, and the switch below folds
// away when the pipeline is built), kept in its block format and bound as raw
// u32 words; dst is n_ids x n_cols f32; ids are u32. An id >= n_rows yields a
// row of zeros instead of reading another tensor's bytes.
//
// Blocks of 18, 22, 34, 54, 66, 84, 110 or 210 bytes straddle words, so fields
// are read through byte/halfword helpers; every f16 field sits at an even byte
// offset (all type sizes are even), so it is one half of one word. The float
// arithmetic is ggml's dequantize_row_* expression for expression: the
// products involved are exact in f32, so even a fused multiply-add gives
// ggml's bits.
//
// One workgroup per output row (folded to 2-D past 65535 ids), one element per
// invocation per step: a lookup moves one row per token, so simplicity wins
// over reuse of the block header between neighbouring elements.

struct GetRowsParams {
    n_cols: u32,
    n_ids: u32,
    n_rows: u32,
    row_bytes: u32,
}

override TYPE: u32 = 0u;

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> weight: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: GetRowsParams;

fn byte_at(off: u32) -> u32 {
    return (weight[off >> 2u] >> ((off & 3u) * 8u)) & 0xFFu;
}

// Halfword at an even byte offset.
fn half_bits(off: u32) -> u32 {
    return (weight[off >> 2u] >> ((off & 2u) * 8u)) & 0xFFFFu;
}

fn f16_at(off: u32) -> f32 {
    return unpack2x16float(weight[off >> 2u])[(off >> 1u) & 1u];
}

fn i8_at(off: u32) -> i32 {
    return i32(byte_at(off) << 24u) >> 24u;
}

// Nibble j % 16 of the 16 bytes at qs: low nibbles are elements 0..16, high 16..32.
fn nibble32(qs: u32, j: u32) -> u32 {
    return (byte_at(qs + j % 16u) >> ((j / 16u) * 4u)) & 0xFu;
}

// Bit j of the little-endian bytes at off.
fn bit_at(off: u32, j: u32) -> u32 {
    return (byte_at(off + j / 8u) >> (j % 8u)) & 1u;
}

fn q4_0(blk: u32, j: u32) -> f32 {
    return f32(i32(nibble32(blk + 2u, j)) - 8) * f16_at(blk);
}

fn q4_1(blk: u32, j: u32) -> f32 {
    return f32(nibble32(blk + 4u, j)) * f16_at(blk) + f16_at(blk + 2u);
}

fn q5_0(blk: u32, j: u32) -> f32 {
    let q = nibble32(blk + 6u, j) | (bit_at(blk + 2u, j) << 4u);
    return f32(i32(q) - 16) * f16_at(blk);
}

fn q5_1(blk: u32, j: u32) -> f32 {
    let q = nibble32(blk + 8u, j) | (bit_at(blk + 4u, j) << 4u);
    return f32(q) * f16_at(blk) + f16_at(blk + 2u);
}

fn q8_0(blk: u32, j: u32) -> f32 {
    return f32(i8_at(blk + 2u + j)) * f16_at(blk);
}

// Q2_K, 84 bytes: scales[16] @0, qs[64] @16, d @80, dmin @82.
fn q2_k(blk: u32, w: u32) -> f32 {
    let c = w / 128u;
    let j = (w % 128u) / 32u;
    let i = w % 32u;
    let sc = byte_at(blk + 8u * c + 2u * j + i / 16u);
    let dl = f16_at(blk + 80u) * f32(sc & 0xFu);
    let ml = f16_at(blk + 82u) * f32(sc >> 4u);
    let v = (byte_at(blk + 16u + 32u * c + i) >> (2u * j)) & 3u;
    return dl * f32(v) - ml;
}

// Q3_K, 110 bytes: hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
fn q3_k(blk: u32, w: u32) -> f32 {
    let c = w / 128u;
    let j = (w % 128u) / 32u;
    let i = w % 32u;
    let s = 8u * c + 2u * j + i / 16u;
    var low = byte_at(blk + 96u + s % 8u);
    if s >= 8u {
        low = low >> 4u;
    }
    let high = (byte_at(blk + 104u + s % 4u) >> (2u * (s / 4u))) & 3u;
    let scale = i32((low & 0xFu) | (high << 4u)) - 32;
    let dl = f16_at(blk + 108u) * f32(scale);
    var v = i32((byte_at(blk + 32u + 32u * c + i) >> (2u * j)) & 3u);
    if ((byte_at(blk + i) >> (4u * c + j)) & 1u) == 0u {
        v -= 4;
    }
    return dl * f32(v);
}

// The 6-bit scale and min of sub-block s of the 12 packed bytes at sc
// (Q4_K, Q5_K; ggml's get_scale_min_k4).
fn scale_min_k4(sc: u32, s: u32) -> vec2<u32> {
    if s < 4u {
        return vec2<u32>(byte_at(sc + s) & 63u, byte_at(sc + s + 4u) & 63u);
    }
    let d = (byte_at(sc + s + 4u) & 0xFu) | ((byte_at(sc + s - 4u) >> 6u) << 4u);
    let m = (byte_at(sc + s + 4u) >> 4u) | ((byte_at(sc + s) >> 6u) << 4u);
    return vec2<u32>(d, m);
}

// Q4_K, 144 bytes: d @0, dmin @2, scales[12] @4, qs[128] @16.
fn q4_k(blk: u32, w: u32) -> f32 {
    let c = w / 64u;
    let hi = (w % 64u) / 32u;
    let l = w % 32u;
    let sm = scale_min_k4(blk + 4u, 2u * c + hi);
    let d1 = f16_at(blk) * f32(sm.x);
    let m1 = f16_at(blk + 2u) * f32(sm.y);
    let q = (byte_at(blk + 16u + 32u * c + l) >> (4u * hi)) & 0xFu;
    return d1 * f32(q) - m1;
}

// Q5_K, 176 bytes: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
fn q5_k(blk: u32, w: u32) -> f32 {
    let c = w / 64u;
    let hi = (w % 64u) / 32u;
    let l = w % 32u;
    let sm = scale_min_k4(blk + 4u, 2u * c + hi);
    let d1 = f16_at(blk) * f32(sm.x);
    let m1 = f16_at(blk + 2u) * f32(sm.y);
    let low = (byte_at(blk + 48u + 32u * c + l) >> (4u * hi)) & 0xFu;
    let q = low + 16u * ((byte_at(blk + 16u + l) >> (2u * c + hi)) & 1u);
    return d1 * f32(q) - m1;
}

// Q6_K, 210 bytes: ql[128] @0, qh[64] @128, scales[16] (i8) @192, d @208.
fn q6_k(blk: u32, w: u32) -> f32 {
    let h = w / 128u;
    let quarter = (w % 128u) / 32u;
    let l = w % 32u;
    let ql = byte_at(blk + 64u * h + l + 32u * (quarter % 2u)) >> (4u * (quarter / 2u));
    let qh = (byte_at(blk + 128u + 32u * h + l) >> (2u * quarter)) & 3u;
    let q = i32((ql & 0xFu) | (qh << 4u)) - 32;
    let sc = i8_at(blk + 192u + 8u * h + l / 16u + 2u * quarter);
    return f16_at(blk + 208u) * f32(sc) * f32(q);
}

// Trit n (from the top) of a TQ1_0 byte: multiplying by 3^n mod 256 shifts it up.
fn trit(q: u32, n: u32) -> f32 {
    var pow3 = 1u;
    for (var k = 0u; k < n; k++) {
        pow3 *= 3u;
    }
    let shifted = (q * pow3) & 0xFFu;
    return f32(i32((shifted * 3u) >> 8u) - 1);
}

// TQ1_0, 54 bytes: qs[48] @0 (32 bytes over elements 0..160, 16 over
// 160..240), qh[4] @48 (elements 240..256), d @52.
fn tq1_0(blk: u32, w: u32) -> f32 {
    var t: f32;
    if w < 160u {
        t = trit(byte_at(blk + w % 32u), w / 32u);
    } else if w < 240u {
        t = trit(byte_at(blk + 32u + (w - 160u) % 16u), (w - 160u) / 16u);
    } else {
        t = trit(byte_at(blk + 48u + (w - 240u) % 4u), (w - 240u) / 4u);
    }
    return t * f16_at(blk + 52u);
}

// TQ2_0, 66 bytes: qs[64] @0 (element 128g + 32l + m in bits 2l of byte 32g + m), d @64.
fn tq2_0(blk: u32, w: u32) -> f32 {
    let q = (byte_at(blk + 32u * (w / 128u) + w % 32u) >> (2u * ((w % 128u) / 32u))) & 3u;
    return f32(i32(q) - 1) * f16_at(blk + 64u);
}

// Element e of the row starting at byte base.
fn element(base: u32, e: u32) -> f32 {
    switch TYPE {
        case 0u: { return bitcast<f32>(weight[base / 4u + e]); }
        case 1u: { return f16_at(base + 2u * e); }
        case 30u: { return bitcast<f32>(half_bits(base + 2u * e) << 16u); }
        case 2u: { return q4_0(base + 18u * (e / 32u), e % 32u); }
        case 3u: { return q4_1(base + 20u * (e / 32u), e % 32u); }
        case 6u: { return q5_0(base + 22u * (e / 32u), e % 32u); }
        case 7u: { return q5_1(base + 24u * (e / 32u), e % 32u); }
        case 8u: { return q8_0(base + 34u * (e / 32u), e % 32u); }
        case 10u: { return q2_k(base + 84u * (e / 256u), e % 256u); }
        case 11u: { return q3_k(base + 110u * (e / 256u), e % 256u); }
        case 12u: { return q4_k(base + 144u * (e / 256u), e % 256u); }
        case 13u: { return q5_k(base + 176u * (e / 256u), e % 256u); }
        case 14u: { return q6_k(base + 210u * (e / 256u), e % 256u); }
        case 34u: { return tq1_0(base + 54u * (e / 256u), e % 256u); }
        case 35u: { return tq2_0(base + 66u * (e / 256u), e % 256u); }
        default: { return 0.0; }
    }
}

@compute @workgroup_size(256)
fn get_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = wid.x + wid.y * nwg.x;
    if r >= params.n_ids {
        return;
    }
    let id = ids[r];
    let valid = id < params.n_rows;
    let base = select(0u, id * params.row_bytes, valid);
    for (var e = lid; e < params.n_cols; e += WG) {
        var v = 0.0;
        if valid {
            v = element(base, e);
        }
        dst[r * params.n_cols + e] = v;
    }
}
