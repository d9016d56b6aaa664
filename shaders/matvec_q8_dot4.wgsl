// matvec_q8_dot4: decode-time y[c][o] = sum_i W[o][i] * xq[c][i], where xq
// is x quantized on the GPU by quantize_q8.wgsl to the 8-bit format ggml's
// CPU backend pairs with the weight type (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for
// Q4_1/Q5_1, Q8_K for the k-quants and TQ types), multiplied as ggml's
// ggml_vec_dot_<type>_q8_<x> does: integer sums of quant products through
// dot4I8Packed (4 multiply-adds of 8-bit integers per instruction), then the
// f32 scales. The integer variant of the portable f32 matvec for adapters
// with packed 4x8 dot products; the rounding of x matches llama.cpp's CPU.
//
// Weights as in matmul_<group>.wgsl: n_out rows of row_bytes, raw GGUF blocks
// bound as array<u32> (read_u32 assembles a word at any byte offset). A
// workgroup of 64 takes 64 rows, one invocation per row, walking it in
// groups of 8 elements (two packed words of weights and of each column),
// which stay inside one sub-block of every format. WEIGHT_TYPE (an override,
// the ggml type id) picks the weight decoder and the activation layout; the
// pipeline compiler folds the switches away.
//
// Every weight quant is decoded to a non-negative byte (ggml's offsets, -8,
// -16, -32, -4, -1, are subtracted afterwards as offset * sum(xq), the sum
// taken with dot4I8Packed too), so one group contributes
//   (f32(dot - offset * xsum) * scale - f32(xsum) * min) * dx + bias * s
// with scale = d * sub-block scale, min = dmin * sub-block min (Q2_K, Q4_K,
// Q5_K), and for Q4_1/Q5_1 bias = m times the block's s = f16(dx * sum(q))
// from the Q8_1 block, added once per block (group 0), as ggml adds m * s.

override WEIGHT_TYPE: u32;

const Q4_0: u32 = 2u;
const Q4_1: u32 = 3u;
const Q5_0: u32 = 6u;
const Q5_1: u32 = 7u;
const Q8_0: u32 = 8u;
const Q2_K: u32 = 10u;
const Q3_K: u32 = 11u;
const Q4_K: u32 = 12u;
const Q5_K: u32 = 13u;
const Q6_K: u32 = 14u;
const TQ1_0: u32 = 34u;
const TQ2_0: u32 = 35u;

// Words per block of quantized activations (see quantize_q8.wgsl).
const Q8_0_WORDS: u32 = 9u;
const Q8_1_WORDS: u32 = 9u;
const Q8_K_WORDS: u32 = 73u;

struct Dot4Params {
    n_in: u32,
    n_out: u32,
    n_cols: u32,
    row_bytes: u32,
}

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Dot4Params;

// The little-endian u32 at any byte offset of `weights` (the word after a
// row's last byte may be read, which the host allows for). Branch-free: a
// shift by 32 is taken mod 32 in WGSL, so hi moves in two steps, and a
// branch on a per-row offset would diverge across invocations.
fn read_u32(byte: u32) -> u32 {
    let i = byte >> 2u;
    let shift = (byte & 3u) * 8u;
    return (weights[i] >> shift) | ((weights[i + 1u] << 1u) << (31u - shift));
}

fn read_u8(byte: u32) -> u32 {
    return (weights[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xFFu;
}

// IEEE binary16 bits to f32, exact for every value including subnormals.
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let mag = h & 0x7FFFu;
    if mag >= 0x7C00u {
        return bitcast<f32>(sign | 0x7F800000u | ((mag & 0x3FFu) << 13u));
    }
    if mag >= 0x0400u {
        return bitcast<f32>(sign | ((mag << 13u) + 0x38000000u));
    }
    let v = f32(mag) * 0x1p-24f;
    return select(v, -v, sign != 0u);
}

// The f16 at an even byte offset, as f32.
fn read_f16(byte: u32) -> f32 {
    return f16_bits_to_f32((weights[byte >> 2u] >> ((byte & 2u) * 8u)) & 0xFFFFu);
}

// Group g of one activation column: two words of quants, their sum, the
// block's scale, and (Q8_1, group 0 of a block only) the block's s.
struct XGroup {
    x0: u32,
    x1: u32,
    sum: i32,
    d: f32,
    s: f32,
}

fn act_group(c: u32, g: u32) -> XGroup {
    var x0: u32;
    var x1: u32;
    var d: f32;
    var s = 0.0;
    switch WEIGHT_TYPE {
        case Q4_0, Q5_0, Q8_0: {
            let blk = (c * (params.n_in / 32u) + (g >> 2u)) * Q8_0_WORDS;
            d = bitcast<f32>(xq[blk]);
            x0 = xq[blk + 1u + 2u * (g & 3u)];
            x1 = xq[blk + 2u + 2u * (g & 3u)];
        }
        case Q4_1, Q5_1: {
            let blk = (c * (params.n_in / 32u) + (g >> 2u)) * Q8_1_WORDS;
            let ds = xq[blk];
            d = f16_bits_to_f32(ds & 0xFFFFu);
            if (g & 3u) == 0u {
                s = f16_bits_to_f32(ds >> 16u);
            }
            x0 = xq[blk + 1u + 2u * (g & 3u)];
            x1 = xq[blk + 2u + 2u * (g & 3u)];
        }
        default: {
            let blk = (c * (params.n_in / 256u) + (g >> 5u)) * Q8_K_WORDS;
            d = bitcast<f32>(xq[blk]);
            x0 = xq[blk + 1u + 2u * (g & 31u)];
            x1 = xq[blk + 2u + 2u * (g & 31u)];
        }
    }
    // Only weights with an offset or a min need sum(xq).
    var sum = 0;
    if WEIGHT_TYPE != Q8_0 && WEIGHT_TYPE != Q4_1 && WEIGHT_TYPE != Q5_1 {
        sum = dot4I8Packed(0x01010101u, x0) + dot4I8Packed(0x01010101u, x1);
    }
    return XGroup(x0, x1, sum, d, s);
}

// Group g of a weight row: two words of quants as non-negative bytes, and
// the factors of the contribution formula in the header.
struct WGroup {
    q0: u32,
    q1: u32,
    offset: i32,
    scale: f32,
    min: f32,
    bias: f32,
}

// Byte j of both words is 1 where bit j (0..3) of h (4 bits) is set.
fn spread4(h: u32) -> u32 {
    return (h * 0x00204081u) & 0x01010101u;
}

// Q4_0/Q4_1 nibbles of group sub (0..3): byte j of qs holds element j low
// and element j + 16 high.
fn nibbles(qs: u32, sub: u32) -> vec2<u32> {
    let off = qs + 8u * (sub & 1u);
    let shift = 4u * (sub >> 1u);
    return vec2<u32>((read_u32(off) >> shift) & 0x0F0F0F0Fu, (read_u32(off + 4u) >> shift) & 0x0F0F0F0Fu);
}

// Q5_0/Q5_1: nibbles plus the fifth bits (bit e of qh for element e) as 16.
fn fives(qh: u32, qs: u32, sub: u32) -> vec2<u32> {
    let h = read_u32(qh) >> (8u * sub);
    return nibbles(qs, sub) | (vec2<u32>(spread4(h & 0xFu), spread4((h >> 4u) & 0xFu)) << vec2<u32>(4u));
}

// The 2-bit fields at `shift` of the 8 bytes at `off`.
fn pairs(off: u32, shift: u32) -> vec2<u32> {
    return vec2<u32>((read_u32(off) >> shift) & 0x03030303u, (read_u32(off + 4u) >> shift) & 0x03030303u);
}

// ggml's get_scale_min_k4: 6-bit scale and min j (0..7) of Q4_K and Q5_K.
fn scale_min_k4(scales: u32, j: u32) -> vec2<f32> {
    if j < 4u {
        return vec2<f32>(f32(read_u8(scales + j) & 63u), f32(read_u8(scales + j + 4u) & 63u));
    }
    let both = read_u8(scales + j + 4u);
    let sc = (both & 0xFu) | ((read_u8(scales + j - 4u) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32((both >> 4u) | ((read_u8(scales + j) >> 6u) << 4u)));
}

// Trit n (0 = most significant) plus one of each byte of `word` (TQ1_0):
// multiplying a byte by 3^n mod 256 brings trit n to the top, and
// (q * 3) >> 8 reads it.
fn trits(word: u32, n: u32) -> u32 {
    var pow3 = 1u;
    for (var i = 0u; i < n; i++) {
        pow3 *= 3u;
    }
    let q = (((vec4<u32>(word) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu)) * pow3) & vec4<u32>(0xFFu);
    return pack4xU8((q * 3u) >> vec4<u32>(8u));
}

fn weight_group(row: u32, g: u32) -> WGroup {
    let base = row * params.row_bytes;
    let sub = g & 3u;
    // Group within a 256-element super-block.
    let gi = g & 31u;
    switch WEIGHT_TYPE {
        case Q4_0: {
            // 18 bytes: d, qs[16]. x = d * (q - 8).
            let blk = base + (g >> 2u) * 18u;
            let q = nibbles(blk + 2u, sub);
            return WGroup(q.x, q.y, 8, read_f16(blk), 0.0, 0.0);
        }
        case Q4_1: {
            // 20 bytes: d, m, qs[16]. x = d * q + m.
            let blk = base + (g >> 2u) * 20u;
            let q = nibbles(blk + 4u, sub);
            return WGroup(q.x, q.y, 0, read_f16(blk), 0.0, read_f16(blk + 2u));
        }
        case Q5_0: {
            // 22 bytes: d, qh (u32), qs[16]. x = d * (q - 16).
            let blk = base + (g >> 2u) * 22u;
            let q = fives(blk + 2u, blk + 6u, sub);
            return WGroup(q.x, q.y, 16, read_f16(blk), 0.0, 0.0);
        }
        case Q5_1: {
            // 24 bytes: d, m, qh, qs[16]. x = d * q + m.
            let blk = base + (g >> 2u) * 24u;
            let q = fives(blk + 4u, blk + 8u, sub);
            return WGroup(q.x, q.y, 0, read_f16(blk), 0.0, read_f16(blk + 2u));
        }
        case Q8_0: {
            // 34 bytes: d, qs[32] (i8, signed already: offset 0).
            let blk = base + (g >> 2u) * 34u;
            let off = blk + 2u + 8u * sub;
            return WGroup(read_u32(off), read_u32(off + 4u), 0, read_f16(blk), 0.0, 0.0);
        }
        case Q2_K: {
            // 84 bytes: scales[16] (scale low, min high nibble), qs[64] (byte
            // 32c + l: weights 128c + 32j + l at bits 2j), d, dmin.
            let blk = base + (g >> 5u) * 84u;
            let sc = read_u8(blk + gi / 2u);
            let q = pairs(blk + 16u + 32u * (gi / 16u) + 8u * (gi & 3u), 2u * ((gi / 4u) & 3u));
            let scale = read_f16(blk + 80u) * f32(sc & 0xFu);
            return WGroup(q.x, q.y, 0, scale, read_f16(blk + 82u) * f32(sc >> 4u), 0.0);
        }
        case Q3_K: {
            // 110 bytes: hmask[32], qs[64] (as Q2_K), scales[12], d. x =
            // d * (sc - 32) * (q - 4) with q = low | hmask bit (4c + j of
            // byte l) << 2. Scale s = gi / 2 keeps its low nibble in byte
            // s % 8 (high nibble from s = 8), its top bits in byte 8 + s % 4.
            let blk = base + (g >> 5u) * 110u;
            let s = gi / 2u;
            let sc_low = (read_u8(blk + 96u + (s & 7u)) >> (4u * (s / 8u))) & 0xFu;
            let sc_high = (read_u8(blk + 104u + (s & 3u)) >> (2u * (s / 4u))) & 3u;
            let j = (gi / 4u) & 3u;
            let low = pairs(blk + 32u + 32u * (gi / 16u) + 8u * (gi & 3u), 2u * j);
            let high = pairs(blk + 8u * (gi & 3u), 4u * (gi / 16u) + j) & vec2<u32>(0x01010101u);
            let q = low | (high << vec2<u32>(2u));
            let scale = read_f16(blk + 108u) * f32(i32(sc_low | (sc_high << 4u)) - 32);
            return WGroup(q.x, q.y, 4, scale, 0.0, 0.0);
        }
        case Q4_K: {
            // 144 bytes: d, dmin, scales[12], qs[128] (byte 32c + l: weight
            // 64c + l low, 64c + 32 + l high nibble). x = d*sc*q - dmin*m.
            let blk = base + (g >> 5u) * 144u;
            let j = gi / 4u;
            let sm = scale_min_k4(blk + 4u, j);
            let off = blk + 16u + 32u * (gi / 8u) + 8u * (gi & 3u);
            let shift = 4u * (j & 1u);
            let q0 = (read_u32(off) >> shift) & 0x0F0F0F0Fu;
            let q1 = (read_u32(off + 4u) >> shift) & 0x0F0F0F0Fu;
            return WGroup(q0, q1, 0, read_f16(blk) * sm.x, read_f16(blk + 2u) * sm.y, 0.0);
        }
        case Q5_K: {
            // 176 bytes: d, dmin, scales[12], qh[32], qs[128] (as Q4_K); the
            // fifth bit of weight 64c + l (+ 32) is bit 2c (+ 1) of qh[l].
            let blk = base + (g >> 5u) * 176u;
            let j = gi / 4u;
            let sm = scale_min_k4(blk + 4u, j);
            let off = blk + 48u + 32u * (gi / 8u) + 8u * (gi & 3u);
            let shift = 4u * (j & 1u);
            let h0 = (read_u32(blk + 16u + 8u * (gi & 3u)) >> j) & 0x01010101u;
            let h1 = (read_u32(blk + 20u + 8u * (gi & 3u)) >> j) & 0x01010101u;
            let q0 = ((read_u32(off) >> shift) & 0x0F0F0F0Fu) | (h0 << 4u);
            let q1 = ((read_u32(off + 4u) >> shift) & 0x0F0F0F0Fu) | (h1 << 4u);
            return WGroup(q0, q1, 0, read_f16(blk) * sm.x, read_f16(blk + 2u) * sm.y, 0.0);
        }
        case Q6_K: {
            // 210 bytes: ql[128], qh[64], scales[16] (i8), d. In half h,
            // weight 32k + l takes nibble k / 2 of ql[64h + 32 (k % 2) + l]
            // and bits 2k of qh[32h + l]. x = d * sc * (q - 32).
            let blk = base + (g >> 5u) * 210u;
            let k = (gi / 4u) & 3u;
            let l = 8u * (gi & 3u);
            let off = blk + 64u * (gi / 16u) + 32u * (k & 1u) + l;
            let shift = 4u * (k >> 1u);
            let high = pairs(blk + 128u + 32u * (gi / 16u) + l, 2u * k) << vec2<u32>(4u);
            let q0 = ((read_u32(off) >> shift) & 0x0F0F0F0Fu) | high.x;
            let q1 = ((read_u32(off + 4u) >> shift) & 0x0F0F0F0Fu) | high.y;
            let sc = bitcast<i32>(read_u8(blk + 192u + gi / 2u) << 24u) >> 24u;
            return WGroup(q0, q1, 32, read_f16(blk + 208u) * f32(sc), 0.0, 0.0);
        }
        case TQ1_0: {
            // 54 bytes: qs[48], qh[4], d; five trits per byte (byte m of the
            // first 32: elements m + 32n; of the next 16: 160 + m + 16n; qh:
            // 240 + j + 4n). Groups 0..19 take trit gi / 4 of 8 of the first
            // 32 bytes, 20..29 trit (gi - 20) / 2 of the next 16, 30 and 31
            // two trits of qh. x = d * (t - 1).
            let blk = base + (g >> 5u) * 54u;
            var q: vec2<u32>;
            if gi >= 30u {
                let qh = read_u32(blk + 48u);
                q = vec2<u32>(trits(qh, 2u * (gi - 30u)), trits(qh, 2u * (gi - 30u) + 1u));
            } else {
                var off = blk + 8u * (gi & 3u);
                var n = gi / 4u;
                if gi >= 20u {
                    off = blk + 32u + 8u * (gi & 1u);
                    n = (gi - 20u) / 2u;
                }
                q = vec2<u32>(trits(read_u32(off), n), trits(read_u32(off + 4u), n));
            }
            return WGroup(q.x, q.y, 1, read_f16(blk + 52u), 0.0, 0.0);
        }
        case TQ2_0: {
            // 66 bytes: qs[64] (byte m of half h: element 128h + m + 32n at
            // bits 2n), d. x = d * (q - 1).
            let blk = base + (g >> 5u) * 66u;
            let q = pairs(blk + 32u * (gi / 16u) + 8u * (gi & 3u), 2u * ((gi / 4u) & 3u));
            return WGroup(q.x, q.y, 1, read_f16(blk + 64u), 0.0, 0.0);
        }
        default: {
            // The host never selects another type for this shader.
            return WGroup(0u, 0u, 0, 0.0, 0.0, 0.0);
        }
    }
}

// One invocation per weight row, MV_ROWS rows per workgroup: each walks its
// whole row, so there is no reduction across invocations (no workgroup
// memory, no barrier: a barrier is a coroutine switch per invocation on
// llvmpipe). Rows past the end decode the last row again and store nothing.
const MV_ROWS: u32 = 64u;
const MV_COLS: u32 = 8u;

@compute @workgroup_size(64)
fn matvec(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n_out = params.n_out;
    let row = (wid.x + wid.y * nwg.x) * MV_ROWS + lid;
    let r = min(row, n_out - 1u);
    let n_cols = params.n_cols;
    var acc = array<f32, MV_COLS>();
    for (var g = 0u; g < params.n_in / 8u; g++) {
        let w = weight_group(r, g);
        for (var c = 0u; c < MV_COLS; c++) {
            if c < n_cols {
                let a = act_group(c, g);
                let dot = dot4I8Packed(w.q0, a.x0) + dot4I8Packed(w.q1, a.x1);
                let ints = f32(dot - w.offset * a.sum) * w.scale - f32(a.sum) * w.min;
                acc[c] += ints * a.d + w.bias * a.s;
            }
        }
    }
    if row < n_out {
        for (var c = 0u; c < MV_COLS; c++) {
            if c < n_cols {
                y[c * n_out + row] = acc[c];
            }
        }
    }
}
