// matmul_legacy: y[c][o] = sum_i W[o][i] * x[c][i] for weights W in one of
// ggml's legacy 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), read
// in place from the GGUF bytes: ggml's mul_mat with W of ne = [n_in, n_out].
//
// Layout: `weights` holds n_out rows of n_in / 32 blocks (row_bytes each), the
// raw file bytes bound as array<u32> (the upload is padded to 4 bytes). Blocks
// are 18-34 bytes, so they straddle words: read_u32 assembles a word at any
// byte offset, and every field of a legacy block sits at an even offset. x is
// n_cols rows of n_in f32 (one per token), y n_cols rows of n_out f32.
//
// WEIGHT_TYPE (an override: the ggml type id) picks the block decoder; the
// pipeline compiler folds the switch in dequant8 away, so each type gets its
// own specialised pipeline from one source. Decoding computes exactly ggml's
// expressions in f32 (d * (q - 8), d * q + m, ...), so it agrees with the CPU
// dequantizer bit for bit, or within 1 ulp where a compiler fuses d * q + m.
//
// The registry appends common/matmul_generic.wgsl (params, bindings, byte
// readers, the entry points), which sees the weights only through dequant8
// (8 weights, for the tiled matmul and dequantize) and dequant32 (one whole
// block, for matvec: its 18..34 bytes read as aligned words and funnel-shifted,
// the scale decoded once per block).

override WEIGHT_TYPE: u32;

const Q4_0: u32 = 2u;
const Q4_1: u32 = 3u;
const Q5_0: u32 = 6u;
const Q5_1: u32 = 7u;
const Q8_0: u32 = 8u;

const BYTE_SHIFTS = vec4<u32>(0u, 8u, 16u, 24u);

// Byte offset of the block holding group g (elements 8g..8g+7) of `row`; each
// 32-element block holds four groups.
fn block_at(row: u32, g: u32, block_bytes: u32) -> u32 {
    return row * params.row_bytes + (g >> 2u) * block_bytes;
}

// Group `sub` (0..3) of a block's 4-bit quants starting at byte `qs`: byte j
// holds element j in its low nibble and element j + 16 in its high nibble.
fn nibbles8(qs: u32, sub: u32) -> W8 {
    let off = qs + 8u * (sub & 1u);
    let shifts = BYTE_SHIFTS + select(0u, 4u, sub >= 2u);
    let a = (vec4<u32>(read_u32(off)) >> shifts) & vec4<u32>(0xFu);
    let b = (vec4<u32>(read_u32(off + 4u)) >> shifts) & vec4<u32>(0xFu);
    return W8(vec4<f32>(a), vec4<f32>(b));
}

// The fifth bits of group `sub` as 0 or 16: bit e of qh belongs to element e.
fn fifth_bits8(qh: u32, sub: u32) -> W8 {
    let s = 8u * sub;
    let a = (vec4<u32>(qh) >> (vec4<u32>(0u, 1u, 2u, 3u) + s)) & vec4<u32>(1u);
    let b = (vec4<u32>(qh) >> (vec4<u32>(4u, 5u, 6u, 7u) + s)) & vec4<u32>(1u);
    return W8(vec4<f32>(a * 16u), vec4<f32>(b * 16u));
}

// Eight signed bytes starting at byte `off`.
fn signed8(off: u32) -> W8 {
    let a = bitcast<vec4<i32>>(vec4<u32>(read_u32(off)) << (vec4<u32>(24u) - BYTE_SHIFTS));
    let b = bitcast<vec4<i32>>(vec4<u32>(read_u32(off + 4u)) << (vec4<u32>(24u) - BYTE_SHIFTS));
    return W8(vec4<f32>(a >> vec4<u32>(24u)), vec4<f32>(b >> vec4<u32>(24u)));
}

// Q4_0, 18 bytes: d (f16), qs[16]. x = d * (q - 8).
fn dequant_q4_0(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 18u);
    let d = read_f16(blk);
    let q = nibbles8(blk + 2u, g & 3u);
    return W8((q.a - 8.0) * d, (q.b - 8.0) * d);
}

// Q4_1, 20 bytes: d, m (f16), qs[16]. x = d * q + m.
fn dequant_q4_1(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 20u);
    let d = read_f16(blk);
    let m = read_f16(blk + 2u);
    let q = nibbles8(blk + 4u, g & 3u);
    return W8(q.a * d + m, q.b * d + m);
}

// Q5_0, 22 bytes: d (f16), qh (u32), qs[16]. x = d * (q - 16).
fn dequant_q5_0(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 22u);
    let d = read_f16(blk);
    let h = fifth_bits8(read_u32(blk + 2u), g & 3u);
    let q = nibbles8(blk + 6u, g & 3u);
    return W8((q.a + h.a - 16.0) * d, (q.b + h.b - 16.0) * d);
}

// Q5_1, 24 bytes: d, m (f16), qh (u32), qs[16]. x = d * q + m.
fn dequant_q5_1(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 24u);
    let d = read_f16(blk);
    let m = read_f16(blk + 2u);
    let h = fifth_bits8(read_u32(blk + 4u), g & 3u);
    let q = nibbles8(blk + 8u, g & 3u);
    return W8((q.a + h.a) * d + m, (q.b + h.b) * d + m);
}

// Q8_0, 34 bytes: d (f16), qs[32] (i8). x = d * q.
fn dequant_q8_0(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 34u);
    let d = read_f16(blk);
    let q = signed8(blk + 2u + 8u * (g & 3u));
    return W8(q.a * d, q.b * d);
}

// Elements 8g..8g+7 of weight row `row`.
fn dequant8(row: u32, g: u32) -> W8 {
    switch WEIGHT_TYPE {
        case Q4_0: {
            return dequant_q4_0(row, g);
        }
        case Q4_1: {
            return dequant_q4_1(row, g);
        }
        case Q5_0: {
            return dequant_q5_0(row, g);
        }
        case Q5_1: {
            return dequant_q5_1(row, g);
        }
        case Q8_0: {
            return dequant_q8_0(row, g);
        }
        default: {
            // The host never selects another type for this shader.
            return W8(vec4<f32>(), vec4<f32>());
        }
    }
}


// Whole blocks for matvec (block c of `row`), with the same f32 expressions.

// The 4-bit codes of a block from its 16 bytes, as f32: element l in the
// low nibble of byte l, element l + 16 in the high nibble; `offset` is
// subtracted as an integer (8 for Q4_0, 0 for Q4_1, whose offset is m).
fn nibbles32(q: array<u32, 4>, offset: i32) -> W32 {
    var w: W32;
    for (var k = 0u; k < 4u; k++) {
        let lo = (vec4<u32>(q[k]) >> BYTE_SHIFTS) & vec4<u32>(0xFu);
        let hi = (vec4<u32>(q[k]) >> (BYTE_SHIFTS + 4u)) & vec4<u32>(0xFu);
        w[k] = vec4<f32>(vec4<i32>(lo) - offset);
        w[k + 4u] = vec4<f32>(vec4<i32>(hi) - offset);
    }
    return w;
}

// The 5-bit codes of Q5_0/Q5_1 (nibbles plus bit e of qh for element e, as
// 16), minus `offset` (16 for Q5_0, 0 for Q5_1), as f32.
fn fives32(q: array<u32, 4>, qh: u32, offset: i32) -> W32 {
    var w: W32;
    for (var k = 0u; k < 4u; k++) {
        let lo = (vec4<u32>(q[k]) >> BYTE_SHIFTS) & vec4<u32>(0xFu);
        let hi = (vec4<u32>(q[k]) >> (BYTE_SHIFTS + 4u)) & vec4<u32>(0xFu);
        let blo = (vec4<u32>(qh) >> (vec4<u32>(0u, 1u, 2u, 3u) + 4u * k)) & vec4<u32>(1u);
        let bhi = (vec4<u32>(qh) >> (vec4<u32>(16u, 17u, 18u, 19u) + 4u * k)) & vec4<u32>(1u);
        w[k] = vec4<f32>(vec4<i32>(lo | (blo << vec4<u32>(4u))) - offset);
        w[k + 4u] = vec4<f32>(vec4<i32>(hi | (bhi << vec4<u32>(4u))) - offset);
    }
    return w;
}

// Words k.. of the windowed block from byte rel (k < 8).
fn win_words4(rel: u32) -> array<u32, 4> {
    return array<u32, 4>(win_u32(rel), win_u32(rel + 4u), win_u32(rel + 8u), win_u32(rel + 12u));
}

// Elements 32c..32c+31 of weight row `row` (the generic part wants one;
// matvec_unit below works on codes).
fn dequant32(row: u32, c: u32) -> W32 {
    return dequant32_by8(row, c);
}

// matvec's unit: one block (float rows: one chunk) of 32.
const MV_UNIT: u32 = 32u;
// Float rows may end mid-chunk (any n_in); block rows never do.
const MV_PARTIAL: bool = false;

// Block u of `row` through one window (2 vec4 loads for blocks of 18..24
// bytes at any even offset, Q5_0: 3; 3 for Q8_0's 34), as integer codes
// with the scale (and Q4_1/Q5_1's offset m) applied per chunk by
// accumulate32_scaled/_affine: ggml's x = d * q (+ m).
fn matvec_unit(row: u32, u: u32, acc: ptr<function, Acc>) {
    switch WEIGHT_TYPE {
        case Q4_0: {
            load_window(row * params.row_bytes + u * 18u, 2u);
            let d = f16_bits_to_f32(win_u32(0u) & 0xFFFFu);
            accumulate32_scaled(acc, nibbles32(win_words4(2u), 8), u, vec2<f32>(d));
        }
        case Q4_1: {
            load_window(row * params.row_bytes + u * 20u, 2u);
            let dm = win_u32(0u);
            let d = f16_bits_to_f32(dm & 0xFFFFu);
            let m = f16_bits_to_f32(dm >> 16u);
            accumulate32_affine(acc, nibbles32(win_words4(4u), 0), u, vec2<f32>(d), vec2<f32>(m));
        }
        case Q5_0: {
            load_window(row * params.row_bytes + u * 22u, 3u);
            let d = f16_bits_to_f32(win_u32(0u) & 0xFFFFu);
            accumulate32_scaled(acc, fives32(win_words4(6u), win_u32(2u), 16), u, vec2<f32>(d));
        }
        case Q5_1: {
            load_window(row * params.row_bytes + u * 24u, 2u);
            let dm = win_u32(0u);
            let d = f16_bits_to_f32(dm & 0xFFFFu);
            let m = f16_bits_to_f32(dm >> 16u);
            let q = fives32(win_words4(8u), win_u32(4u), 0);
            accumulate32_affine(acc, q, u, vec2<f32>(d), vec2<f32>(m));
        }
        case Q8_0: {
            load_window(row * params.row_bytes + u * 34u, 3u);
            let d = f16_bits_to_f32(win_u32(0u) & 0xFFFFu);
            var q: W32;
            for (var k = 0u; k < 8u; k++) {
                let w = win_u32(2u + 4u * k);
                let s = bitcast<vec4<i32>>(vec4<u32>(w) << (vec4<u32>(24u) - BYTE_SHIFTS));
                q[k] = vec4<f32>(s >> vec4<u32>(24u));
            }
            accumulate32_scaled(acc, q, u, vec2<f32>(d));
        }
        default: {}
    }
}
