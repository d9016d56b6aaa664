// matmul_kquants: y[c][o] = sum_i W[o][i] * x[c][i] for weights W in ggml's
// k-quant formats (Q2_K..Q6_K) read in place from the GGUF bytes: ggml's
// mul_mat with W of ne = [n_in, n_out]. x is n_cols rows of n_in f32 (one
// per token), y n_cols rows of n_out f32.
//
// `weights` holds n_out rows of n_in / 256 super-blocks (row_bytes each), the
// raw bytes bound as array<u32> (padded to 4 bytes). Blocks of 84..210 bytes
// straddle words: read_u32 reads a word at any byte offset; the f16 fields
// (d, dmin) sit at even offsets. A group of 8 consecutive weights (gi = g % 32
// in its block) stays inside one sub-block of 16 or 32, and its bits sit in
// 8 consecutive bytes in every layout: one scale (and min), two words of
// quants, two of high bits. WEIGHT_TYPE (an override: the ggml type id) picks
// the decoder; the pipeline compiler folds the switch away. Decoding
// computes ggml's f32 expressions in ggml's order (d * sc, then d1 * q - m1;
// (d * sc) * q for Q6_K). All but Q6_K's last product are exact in f32 (an
// 11-bit f16 significand times integers of at most 11 bits), so fusing
// d1 * q - m1 into one fma changes nothing: the GPU agrees with the CPU
// dequantizer bit for bit, Q6_K within 1 ulp.
//
// The registry appends common/matmul_generic.wgsl (params, bindings, byte
// readers, the entry points). Its matvec decodes whole super-blocks
// (matvec_unit, below); dequant8 serves the tiled matmul and dequantize.

override WEIGHT_TYPE: u32;

const Q2_K: u32 = 10u;
const Q3_K: u32 = 11u;
const Q4_K: u32 = 12u;
const Q5_K: u32 = 13u;
const Q6_K: u32 = 14u;
const BYTE_SHIFTS = vec4<u32>(0u, 8u, 16u, 24u);

// Byte offset of the super-block (32 groups) holding group g of `row`.
fn block_at(row: u32, g: u32, block_bytes: u32) -> u32 {
    return row * params.row_bytes + (g >> 5u) * block_bytes;
}

fn read_u8(byte: u32) -> u32 {
    return (weights[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xFFu;
}

// Bits shift.. of the 8 bytes at off.., masked (shift + width <= 8).
struct U8 { a: vec4<u32>, b: vec4<u32> }

fn fields8(off: u32, shift: u32, mask: u32) -> U8 {
    let s = BYTE_SHIFTS + shift;
    let m = vec4<u32>(mask);
    return U8((vec4<u32>(read_u32(off)) >> s) & m, (vec4<u32>(read_u32(off + 4u)) >> s) & m);
}

// Q2_K, 84 bytes: scales[16] (scale low, min high nibble; byte gi / 2), qs[64]
// (byte 32c + l: weights 128c + 32j + l at bits 2j), d, dmin. x = d*sc*q - dmin*m.
fn dequant_q2_k(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 84u);
    let gi = g & 31u;
    let sc = read_u8(blk + gi / 2u);
    let dl = read_f16(blk + 80u) * f32(sc & 0xFu);
    let ml = read_f16(blk + 82u) * f32(sc >> 4u);
    let q = fields8(blk + 16u + 32u * (gi / 16u) + 8u * (gi & 3u), 2u * ((gi / 4u) & 3u), 3u);
    return W8(dl * vec4<f32>(q.a) - ml, dl * vec4<f32>(q.b) - ml);
}

// Q3_K, 110 bytes: hmask[32], qs[64] (low 2 bits, as Q2_K), scales[12], d.
// x = d*(sc-32)*(q-4), a set hmask bit (bit 4c + j of byte l) cancelling the
// -4. Scale s = gi / 2 keeps its low nibble in byte s % 8 (high nibble from
// s = 8) and its top two bits in byte 8 + s % 4 at bit 2 (s / 4).
fn dequant_q3_k(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 110u);
    let gi = g & 31u;
    let s = gi / 2u;
    let sc_low = (read_u8(blk + 96u + (s & 7u)) >> (4u * (s / 8u))) & 0xFu;
    let sc_high = (read_u8(blk + 104u + (s & 3u)) >> (2u * (s / 4u))) & 3u;
    let dl = read_f16(blk + 108u) * f32(i32(sc_low | (sc_high << 4u)) - 32);
    let j = (gi / 4u) & 3u;
    let low = fields8(blk + 32u + 32u * (gi / 16u) + 8u * (gi & 3u), 2u * j, 3u);
    let high = fields8(blk + 8u * (gi & 3u), 4u * (gi / 16u) + j, 1u);
    let a = vec4<i32>(low.a + 4u * high.a) - vec4<i32>(4);
    let b = vec4<i32>(low.b + 4u * high.b) - vec4<i32>(4);
    return W8(dl * vec4<f32>(a), dl * vec4<f32>(b));
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

// Q4_K, 144 bytes: d, dmin, scales[12], qs[128] (byte 32c + l: weight 64c + l
// low, 64c + 32 + l high nibble). x = d*sc*q - dmin*m, scale and min gi / 4.
fn dequant_q4_k(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 144u);
    let gi = g & 31u;
    let sm = scale_min_k4(blk + 4u, gi / 4u);
    let d = read_f16(blk) * sm.x;
    let m = read_f16(blk + 2u) * sm.y;
    let q = fields8(blk + 16u + 32u * (gi / 8u) + 8u * (gi & 3u), 4u * ((gi / 4u) & 1u), 0xFu);
    return W8(d * vec4<f32>(q.a) - m, d * vec4<f32>(q.b) - m);
}

// Q5_K, 176 bytes: d, dmin, scales[12], qh[32], qs[128] (as Q4_K); the fifth
// bit of weight 64c + l (+ 32) is bit 2c (+ 1) of qh[l], i.e. bit gi / 4.
fn dequant_q5_k(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 176u);
    let gi = g & 31u;
    let j = gi / 4u;
    let sm = scale_min_k4(blk + 4u, j);
    let d = read_f16(blk) * sm.x;
    let m = read_f16(blk + 2u) * sm.y;
    let low = fields8(blk + 48u + 32u * (gi / 8u) + 8u * (gi & 3u), 4u * (j & 1u), 0xFu);
    let high = fields8(blk + 16u + 8u * (gi & 3u), j, 1u);
    return W8(d * vec4<f32>(low.a + 16u * high.a) - m, d * vec4<f32>(low.b + 16u * high.b) - m);
}

// Q6_K, 210 bytes: ql[128], qh[64], scales[16] (i8), d. In half h, weight
// 32k + l takes nibble k / 2 of ql[64h + 32 (k % 2) + l] and bits 2k of
// qh[32h + l]. x = d*sc*(q-32) with scale gi / 2.
fn dequant_q6_k(row: u32, g: u32) -> W8 {
    let blk = block_at(row, g, 210u);
    let gi = g & 31u;
    let k = (gi / 4u) & 3u;
    let l = 8u * (gi & 3u);
    let low = fields8(blk + 64u * (gi / 16u) + 32u * (k & 1u) + l, 4u * (k >> 1u), 0xFu);
    let high = fields8(blk + 128u + 32u * (gi / 16u) + l, 2u * k, 3u);
    let sc = bitcast<i32>(read_u8(blk + 192u + gi / 2u) << 24u) >> 24u;
    let d = read_f16(blk + 208u) * f32(sc);
    let a = vec4<i32>(low.a | (high.a << vec4<u32>(4u))) - vec4<i32>(32);
    let b = vec4<i32>(low.b | (high.b << vec4<u32>(4u))) - vec4<i32>(32);
    return W8(d * vec4<f32>(a), d * vec4<f32>(b));
}

// Elements 8g..8g+7 of weight row `row`; the host picks only these types.
fn dequant8(row: u32, g: u32) -> W8 {
    switch WEIGHT_TYPE {
        case Q2_K: { return dequant_q2_k(row, g); }
        case Q3_K: { return dequant_q3_k(row, g); }
        case Q4_K: { return dequant_q4_k(row, g); }
        case Q5_K: { return dequant_q5_k(row, g); }
        case Q6_K: { return dequant_q6_k(row, g); }
        default: { return W8(vec4<f32>(), vec4<f32>()); }
    }
}


// Scale and min of sub-block j (0..7) from the 12 scale bytes held in s0..s2
// (get_scale_min_k4 on whole words).
fn scale_min_words(s0: u32, s1: u32, s2: u32, j: u32) -> vec2<f32> {
    let sh = (j & 3u) * 8u;
    let b0 = (s0 >> sh) & 0xFFu;
    let b1 = (s1 >> sh) & 0xFFu;
    let b2 = (s2 >> sh) & 0xFFu;
    let low = vec2<u32>(b0 & 63u, b1 & 63u);
    let high = vec2<u32>((b2 & 0xFu) | ((b0 >> 6u) << 4u), (b2 >> 4u) | ((b1 >> 6u) << 4u));
    return vec2<f32>(select(high, low, j < 4u));
}

// Elements 32c..32c+31 (the generic part wants one; matvec_unit below
// decodes whole super-blocks instead).
fn dequant32(row: u32, c: u32) -> W32 {
    return dequant32_by8(row, c);
}

// matvec's unit: one super-block of 256, its scales decoded once. Q4_K and
// Q5_K (144 and 176 bytes: every super-block starts at a multiple of 16) read
// weights4 directly, 9 and 11 vec4 loads, each pair of qs vec4s once for the
// two sub-blocks whose nibbles it holds; Q2_K, Q3_K and Q6_K go through vec4
// windows (7, 8 and 10 loads) since their blocks start at any even offset.
// Measured at 2048x6144 on lavapipe, u32 loads per group of 8 -> windows:
// Q6_K 25 -> 14 ms, Q3_K 57 -> 7, Q2_K 15 -> 5 (Q4_K with vec4s: 7).
const MV_UNIT: u32 = 256u;
const MV_PARTIAL: bool = false;

fn matvec_unit(row: u32, u: u32, acc: ptr<function, Acc>) {
    switch WEIGHT_TYPE {
        case Q2_K: { matvec_unit_q2_k(row, u, acc); }
        case Q3_K: { matvec_unit_q3_k(row, u, acc); }
        case Q4_K: { matvec_unit_q45_k(row, u, acc, 144u); }
        case Q5_K: { matvec_unit_q45_k(row, u, acc, 176u); }
        case Q6_K: { matvec_unit_q6_k(row, u, acc); }
        default: {}
    }
}

// Byte `b` (0..3) of `word`, as u32.
fn byte_of(word: u32, b: u32) -> u32 {
    return (word >> (8u * b)) & 0xFFu;
}

// Q2_K through one window (7 vec4 loads): chunk c = 4n + j is bits 2j of
// qs bytes 32n..32n+31 (at byte 16), with scale bytes 2c (first 16 weights)
// and 2c + 1 (next 16): scale low nibble, min high nibble. dl * q - ml as
// dequant_q2_k computes it.
fn matvec_unit_q2_k(row: u32, u: u32, acc: ptr<function, Acc>) {
    load_window(row * params.row_bytes + u * 84u, 7u);
    let dm = win_u32(80u);
    let d = f16_bits_to_f32(dm & 0xFFFFu);
    let dmin = f16_bits_to_f32(dm >> 16u);
    var sc: array<u32, 4>;
    for (var i = 0u; i < 4u; i++) {
        sc[i] = win_u32(4u * i);
    }
    let qs = win_halves(16u);
    // j written out (see q45_chunk).
    for (var n = 0u; n < 2u; n++) {
        let q = half_words(qs, n);
        q2_chunk(acc, q, sc, d, dmin, n, 0u, u);
        q2_chunk(acc, q, sc, d, dmin, n, 1u, u);
        q2_chunk(acc, q, sc, d, dmin, n, 2u, u);
        q2_chunk(acc, q, sc, d, dmin, n, 3u, u);
    }
}

// Chunk c = 4n + j of a Q2_K super-block: bits 2j of the 32 qs bytes q.
fn q2_chunk(acc: ptr<function, Acc>, q: array<u32, 8>, sc: array<u32, 4>, d: f32, dmin: f32,
    n: u32, j: u32, u: u32) {
    let c = 4u * n + j;
    let sw = select(select(sc[0], sc[1], c >= 2u), select(sc[2], sc[3], c >= 6u), c >= 4u);
    let s0 = byte_of(sw, 2u * (c % 2u));
    let s1 = byte_of(sw, 2u * (c % 2u) + 1u);
    let dl0 = d * f32(s0 & 0xFu);
    let dl1 = d * f32(s1 & 0xFu);
    let ml0 = dmin * f32(s0 >> 4u);
    let ml1 = dmin * f32(s1 >> 4u);
    var w: W32;
    for (var m = 0u; m < 8u; m++) {
        w[m] = vec4<f32>((vec4<u32>(q[m]) >> (BYTE_SHIFTS + 2u * j)) & vec4<u32>(3u));
    }
    accumulate32_affine(acc, w, 8u * u + c, vec2<f32>(dl0, dl1), -vec2<f32>(ml0, ml1));
}

// Scale s (0..15) of Q3_K, minus 32, from its 12 bytes as three words.
fn q3_scale(scl: array<u32, 2>, sch: u32, s: u32) -> f32 {
    let low = (byte_of(select(scl[0], scl[1], (s & 7u) >= 4u), s & 3u) >> (4u * (s / 8u))) & 0xFu;
    let high = (byte_of(sch, s & 3u) >> (2u * (s / 4u))) & 3u;
    return f32(i32(low | (high << 4u)) - 32);
}

// Q3_K through one window (8 vec4 loads): chunk c = 4n + j is bits 2j of qs
// bytes 32n.. (at byte 32) and bit c of hmask bytes 0..31, with 6-bit
// scales 2c and 2c + 1 (minus 32) from the 12 bytes at 96; d at 108.
fn matvec_unit_q3_k(row: u32, u: u32, acc: ptr<function, Acc>) {
    load_window(row * params.row_bytes + u * 110u, 8u);
    let d = f16_bits_to_f32(win_u32(108u) & 0xFFFFu);
    let scl = array<u32, 2>(win_u32(96u), win_u32(100u));
    let sch = win_u32(104u);
    var hm: array<u32, 8>;
    for (var m = 0u; m < 8u; m++) {
        hm[m] = win_u32(4u * m);
    }
    let qs = win_halves(32u);
    // j written out (see q45_chunk).
    for (var n = 0u; n < 2u; n++) {
        let q = half_words(qs, n);
        q3_chunk(acc, q, hm, scl, sch, d, n, 0u, u);
        q3_chunk(acc, q, hm, scl, sch, d, n, 1u, u);
        q3_chunk(acc, q, hm, scl, sch, d, n, 2u, u);
        q3_chunk(acc, q, hm, scl, sch, d, n, 3u, u);
    }
}

// Chunk c = 4n + j of a Q3_K super-block: bits 2j of the 32 qs bytes q and
// bit c of the hmask words hm.
fn q3_chunk(acc: ptr<function, Acc>, q: array<u32, 8>, hm: array<u32, 8>, scl: array<u32, 2>,
    sch: u32, d: f32, n: u32, j: u32, u: u32) {
    let c = 4u * n + j;
    let dl0 = q3_scale(scl, sch, 2u * c) * d;
    let dl1 = q3_scale(scl, sch, 2u * c + 1u) * d;
    var w: W32;
    for (var m = 0u; m < 8u; m++) {
        let low = (vec4<u32>(q[m]) >> (BYTE_SHIFTS + 2u * j)) & vec4<u32>(3u);
        let high = (vec4<u32>(hm[m]) >> (BYTE_SHIFTS + c)) & vec4<u32>(1u);
        w[m] = vec4<f32>(vec4<i32>(low + 4u * high) - vec4<i32>(4));
    }
    accumulate32_scaled(acc, w, 8u * u + c, vec2<f32>(dl0, dl1));
}

// Q6_K through one window (14 vec4 loads): in half h, chunk k takes nibble
// k / 2 of ql bytes 64h + 32 (k % 2).. and bits 2k of qh bytes 32h.. (at
// byte 128), with int8 scales 8h + 2k and 8h + 2k + 1 (at byte 192); d at
// 208. (d * sc) * q as dequant_q6_k computes it.
fn matvec_unit_q6_k(row: u32, u: u32, acc: ptr<function, Acc>) {
    load_window(row * params.row_bytes + u * 210u, 14u);
    let d = f16_bits_to_f32(win_u32(208u) & 0xFFFFu);
    var sc: array<u32, 4>;
    for (var i = 0u; i < 4u; i++) {
        sc[i] = win_u32(192u + 4u * i);
    }
    // Both halves' words, read with constant window indices, picked by h
    // with selects (half_words): ql 64 bytes per half, qh 32.
    let ql_a = win_halves(0u);
    let ql_b = win_halves(64u);
    var qh_ab: Halves;
    for (var m = 0u; m < 8u; m++) {
        qh_ab.lo[m] = win_u32(128u + 4u * m);
        qh_ab.hi[m] = win_u32(160u + 4u * m);
    }
    for (var h = 0u; h < 2u; h++) {
        let ql0 = half_words(Halves(ql_a.lo, ql_b.lo), h);
        let ql1 = half_words(Halves(ql_a.hi, ql_b.hi), h);
        let qh = half_words(qh_ab, h);
        // k written out (see q45_chunk).
        q6_chunk(acc, ql0, ql1, qh, sc, d, h, 0u, u);
        q6_chunk(acc, ql0, ql1, qh, sc, d, h, 1u, u);
        q6_chunk(acc, ql0, ql1, qh, sc, d, h, 2u, u);
        q6_chunk(acc, ql0, ql1, qh, sc, d, h, 3u, u);
    }
}

// Chunk k of half h of a Q6_K super-block: nibble k / 2 of ql1 (k odd) or
// ql0, bits 2k of qh, int8 scales 8h + 2k and 8h + 2k + 1.
fn q6_chunk(acc: ptr<function, Acc>, ql0: array<u32, 8>, ql1: array<u32, 8>, qh: array<u32, 8>,
    sc: array<u32, 4>, d: f32, h: u32, k: u32, u: u32) {
    // Indices that depend on an outer loop are selects: if that loop is not
    // unrolled, an array index would make the array memory.
    let sw = select(select(sc[0], sc[1], k >= 2u), select(sc[2], sc[3], k >= 2u), h == 1u);
    let sb = 2u * (k % 2u);
    let s0 = bitcast<i32>(byte_of(sw, sb) << 24u) >> 24u;
    let s1 = bitcast<i32>(byte_of(sw, sb + 1u) << 24u) >> 24u;
    var w: W32;
    for (var m = 0u; m < 8u; m++) {
        let qlw = select(ql0[m], ql1[m], k % 2u == 1u);
        let low = (vec4<u32>(qlw) >> (BYTE_SHIFTS + 4u * (k / 2u))) & vec4<u32>(0xFu);
        let high = (vec4<u32>(qh[m]) >> (BYTE_SHIFTS + 2u * k)) & vec4<u32>(3u);
        w[m] = vec4<f32>(vec4<i32>(low | (high << vec4<u32>(4u))) - vec4<i32>(32));
    }
    accumulate32_scaled(acc, w, 8u * u + 4u * h + k, vec2<f32>(d * f32(s0), d * f32(s1)));
}

// Sub-block j of a Q4_K/Q5_K super-block: the nibbles at bit `shift` of
// the 32 qs bytes q (plus qh's bit j for Q5_K). A function called with a
// constant shift instead of a loop over h: rolled loops shifted by run-time
// amounts and ran their bodies behind branches (TQ2_0 decode: 4.9 -> 3.5 ms
// written out).
fn q45_chunk(acc: ptr<function, Acc>, q: array<vec4<u32>, 2>, qh: array<vec4<u32>, 2>,
    head: vec4<u32>, d: f32, dmin: f32, j: u32, shift: u32, u: u32, q5: bool) {
    let sm = scale_min_words(head.y, head.z, head.w, j);
    let dl = d * sm.x;
    let ml = dmin * sm.y;
    let shifts = BYTE_SHIFTS + shift;
    var w: W32;
    for (var k = 0u; k < 8u; k++) {
        var v = (vec4<u32>(q[k / 4u][k % 4u]) >> shifts) & vec4<u32>(0xFu);
        if q5 {
            v += ((vec4<u32>(qh[k / 4u][k % 4u]) >> (BYTE_SHIFTS + j)) & vec4<u32>(1u)) * 16u;
        }
        w[k] = vec4<f32>(v);
    }
    accumulate32_affine(acc, w, 8u * u + j, vec2<f32>(dl), vec2<f32>(-ml));
}

fn matvec_unit_q45_k(row: u32, u: u32, acc: ptr<function, Acc>, block_bytes: u32) {
    // 144 and 176 bytes: every super-block starts at a multiple of 16.
    let i = (row * params.row_bytes + u * block_bytes) >> 4u;
    let head = weights4[i];
    let d = f16_bits_to_f32(head.x & 0xFFFFu);
    let dmin = f16_bits_to_f32(head.x >> 16u);
    let q5 = block_bytes == 176u;
    // Q5_K: qh[32] at byte 16 (fifth bit of sub-block j: bit j of qh[l]).
    var qh: array<vec4<u32>, 2>;
    if q5 {
        qh[0] = weights4[i + 1u];
        qh[1] = weights4[i + 2u];
    }
    let qs = i + select(1u, 3u, q5);
    // Sub-blocks 2p and 2p + 1 share 32 bytes of qs (low and high nibbles).
    // Written out rather than looped (see q45_chunk).
    for (var p = 0u; p < 4u; p++) {
        let q = array<vec4<u32>, 2>(weights4[qs + 2u * p], weights4[qs + 2u * p + 1u]);
        q45_chunk(acc, q, qh, head, d, dmin, 2u * p, 0u, u, q5);
        q45_chunk(acc, q, qh, head, d, dmin, 2u * p + 1u, 4u, u, q5);
    }
}
