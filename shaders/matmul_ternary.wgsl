// matmul_ternary: y[c][o] = sum_i W[o][i] * x[c][i] for ternary weights
// (TQ1_0, TQ2_0) read in place from the GGUF bytes: ggml's mul_mat with W of
// ne = [n_in, n_out]. A weight is d * t: one f16 scale d per 256 elements, a
// trit t in {-1, 0, +1}. x is n_cols rows of n_in f32, y n_cols rows of n_out.
//
// `weights` holds n_out rows of n_in / 256 blocks (row_bytes each), the raw
// bytes bound as array<u32> (padded to 4 bytes). TQ2_0 (66 bytes): qs[64]
// holds t + 1 in two bits, byte m of each 32-byte half elements m + 32n at
// bits 2n; then d. TQ1_0 (54 bytes): qs[48], five trits per byte as a base-3
// fraction (byte m of the first 32: elements m + 32n; of the next 16:
// 160 + m + 16n), qh[4] (elements 240 + j + 4n), d. Multiplying a byte by
// 3^n mod 256 brings trit n to the top, and (q * 3) >> 8 reads it.
//
// Unpacking is integer arithmetic only. matvec applies each trit to its
// activation by selects and scales each chunk's sum by d once
// (accumulate_trits); the tiled matmul and dequantize decode weights to f32
// (t - 1) * d as ggml's dequantizer computes them. The registry appends
// common/matmul_generic.wgsl (the entry points): its matvec reads each
// block through one vec4 window (load_window) and decodes it whole; its
// tiled matmul reuses each decoded weight for 32 columns.
// (An earlier matvec_ternary summed activations by trit with selects
// instead of multiplying; it went with the generic rewrite, since a convert
// and an fma per weight are no more instructions. Not measured on its own.)

override WEIGHT_TYPE: u32;

const TQ1_0: u32 = 34u;
const TQ2_0: u32 = 35u;
const BYTE_SHIFTS = vec4<u32>(0u, 8u, 16u, 24u);

// Elements 8g..8g+7 as codes t + 1 (0, 1, 2; raw TQ2_0 bytes may hold 3,
// which ggml decodes as +2) and their block's scale.
struct T8 { a: vec4<u32>, b: vec4<u32>, d: f32 }

// Byte offset of the block (32 groups) holding group g of `row`.
fn block_at(row: u32, g: u32, block_bytes: u32) -> u32 {
    return row * params.row_bytes + (g >> 5u) * block_bytes;
}

// Trit n (0 = most significant) plus one of each byte of `word` (TQ1_0).
fn trits4(word: u32, n: u32) -> vec4<u32> {
    var pow3 = 1u;
    for (var i = 0u; i < n; i++) { pow3 *= 3u; }
    let q = (((vec4<u32>(word) >> BYTE_SHIFTS) & vec4<u32>(0xFFu)) * pow3) & vec4<u32>(0xFFu);
    return (q * 3u) >> vec4<u32>(8u);
}

// TQ1_0, 54 bytes: qs[48], qh[4], d. Group gi = g % 32: 0..19 take trit
// gi / 4 of 8 of the first 32 bytes, 20..29 trit (gi - 20) / 2 of 8 of the
// next 16, 30 and 31 two trits of the 4 qh bytes.
fn dequant_tq1_0(row: u32, g: u32) -> T8 {
    let blk = block_at(row, g, 54u);
    let gi = g & 31u;
    let d = read_f16(blk + 52u);
    if gi >= 30u {
        let qh = read_u32(blk + 48u);
        return T8(trits4(qh, 2u * (gi - 30u)), trits4(qh, 2u * (gi - 30u) + 1u), d);
    }
    var off = blk + 8u * (gi & 3u);
    var n = gi / 4u;
    if gi >= 20u {
        off = blk + 32u + 8u * (gi & 1u);
        n = (gi - 20u) / 2u;
    }
    return T8(trits4(read_u32(off), n), trits4(read_u32(off + 4u), n), d);
}

// TQ2_0, 66 bytes: qs[64], d. Group gi: bytes 32 (gi / 16) + 8 (gi % 4)..,
// bits 2 ((gi / 4) % 4).
fn dequant_tq2_0(row: u32, g: u32) -> T8 {
    let blk = block_at(row, g, 66u);
    let gi = g & 31u;
    let off = blk + 32u * (gi / 16u) + 8u * (gi & 3u);
    let s = BYTE_SHIFTS + 2u * ((gi / 4u) & 3u);
    let q = vec4<u32>(read_u32(off), read_u32(off + 4u), 0u, 0u);
    return T8((q.xxxx >> s) & vec4<u32>(3u), (q.yyyy >> s) & vec4<u32>(3u), read_f16(blk + 64u));
}

// Elements 8g..8g+7 of weight row `row`, as codes and scale (TQ types only).
fn trits8(row: u32, g: u32) -> T8 {
    switch WEIGHT_TYPE {
        case TQ1_0: { return dequant_tq1_0(row, g); }
        case TQ2_0: { return dequant_tq2_0(row, g); }
        default: { return T8(vec4<u32>(1u), vec4<u32>(1u), 0.0); }
    }
}

// The same as f32 weights, computed as ggml's dequantizers do: (t - 1) * d.
fn dequant8(row: u32, g: u32) -> W8 {
    let t = trits8(row, g);
    let one = vec4<i32>(1);
    return W8(vec4<f32>(vec4<i32>(t.a) - one) * t.d, vec4<f32>(vec4<i32>(t.b) - one) * t.d);
}


// Elements 32c..32c+31 (the generic part wants one; matvec_unit below
// decodes whole blocks instead).
fn dequant32(row: u32, c: u32) -> W32 {
    return dequant32_by8(row, c);
}

// matvec's unit: one block of 256, read through one window (5 vec4 loads
// for either type, where TQ2_0 took 19 u32 loads and TQ1_0 160).
const MV_UNIT: u32 = 256u;
const MV_PARTIAL: bool = false;

// acc += d * sum (t - 1) x over chunk c of codes t (t + 1 per weight). The
// ternary value is applied by selects, never by a multiply: code 0 takes -x,
// 1 nothing, 2 +x (and 3, which raw TQ2_0 bytes may hold and ggml decodes as
// +2, takes +x twice); the block scale multiplies the chunk's sum once.
fn accumulate_trits(acc: ptr<function, Acc>, t: array<vec4<u32>, 8>, d: f32, c: u32) {
    let zero = vec4<f32>();
    for (var col = 0u; col < MV_COLS; col++) {
        let xv = x32(col, c);
        var s = zero;
        for (var k = 0u; k < 8u; k++) {
            let q = t[k];
            let x = xv[k];
            s += select(zero, x, q >= vec4<u32>(2u)) + select(zero, x, q == vec4<u32>(3u));
            s -= select(zero, x, q == vec4<u32>(0u));
        }
        (*acc)[col] += d * ((s.x + s.y) + (s.z + s.w));
    }
}

// Chunk c of a TQ2_0 block: trits at bits 2n of the half's 32 bytes q. Called
// with constant n, not from a loop: the loop stayed rolled (its shifts by a
// run-time amount, its body behind a branch).
fn tq2_chunk(acc: ptr<function, Acc>, q: array<u32, 8>, n: u32, d: f32, c: u32) {
    var t: array<vec4<u32>, 8>;
    for (var k = 0u; k < 8u; k++) {
        t[k] = (vec4<u32>(q[k]) >> (BYTE_SHIFTS + 2u * n)) & vec4<u32>(3u);
    }
    accumulate_trits(acc, t, d, c);
}

fn matvec_unit(row: u32, u: u32, acc: ptr<function, Acc>) {
    var t: array<vec4<u32>, 8>;
    if WEIGHT_TYPE == TQ2_0 {
        // qs[64] at 0 (chunk 4h + n: bits 2n of bytes 32h..32h+31), d at 64.
        load_window(row * params.row_bytes + u * 66u, 5u);
        let d = f16_bits_to_f32(win_u32(64u) & 0xFFFFu);
        let qs = win_halves(0u);
        // Written out (see tq2_chunk).
        tq2_chunk(acc, qs.lo, 0u, d, 8u * u);
        tq2_chunk(acc, qs.lo, 1u, d, 8u * u + 1u);
        tq2_chunk(acc, qs.lo, 2u, d, 8u * u + 2u);
        tq2_chunk(acc, qs.lo, 3u, d, 8u * u + 3u);
        tq2_chunk(acc, qs.hi, 0u, d, 8u * u + 4u);
        tq2_chunk(acc, qs.hi, 1u, d, 8u * u + 5u);
        tq2_chunk(acc, qs.hi, 2u, d, 8u * u + 6u);
        tq2_chunk(acc, qs.hi, 3u, d, 8u * u + 7u);
        return;
    }
    // TQ1_0: qs[48] at 0, qh[4] at 48, d at 52. Chunk j < 5 is trit j of
    // bytes 0..31; chunks 5..7 take trits 2j - 10 and 2j - 9 of bytes 32..47,
    // except that the second half of chunk 7 is the four trits of qh.
    load_window(row * params.row_bytes + u * 54u, 5u);
    let d = f16_bits_to_f32(win_u32(52u) & 0xFFFFu);
    // The bytes as vec4s, multiplied by 3 (mod 256) once per trit: byte q
    // times 3^n brings trit n to the top, and (q * 3) >> 8 reads it (the
    // running product replaces a power of 3 per trit).
    let bytes = vec4<u32>(0xFFu);
    var a: array<vec4<u32>, 8>;
    for (var k = 0u; k < 8u; k++) {
        a[k] = (vec4<u32>(win_u32(4u * k)) >> BYTE_SHIFTS) & bytes;
    }
    var b: array<vec4<u32>, 4>;
    for (var k = 0u; k < 4u; k++) {
        b[k] = (vec4<u32>(win_u32(32u + 4u * k)) >> BYTE_SHIFTS) & bytes;
    }
    let qh = (vec4<u32>(win_u32(48u)) >> BYTE_SHIFTS) & bytes;
    for (var j = 0u; j < 5u; j++) {
        for (var k = 0u; k < 8u; k++) {
            t[k] = (a[k] * 3u) >> vec4<u32>(8u);
            a[k] = (a[k] * 3u) & bytes;
        }
        accumulate_trits(acc, t, d, 8u * u + j);
    }
    // qh's trit k (0..3) for chunk 7's second half, element 240 + 4k + m.
    var h = qh;
    var high: array<vec4<u32>, 4>;
    for (var k = 0u; k < 4u; k++) {
        high[k] = (h * 3u) >> vec4<u32>(8u);
        h = (h * 3u) & bytes;
    }
    for (var p = 0u; p < 3u; p++) {
        for (var k = 0u; k < 4u; k++) {
            t[k] = (b[k] * 3u) >> vec4<u32>(8u);
            let next = (b[k] * 3u) & bytes;
            t[k + 4u] = select((next * 3u) >> vec4<u32>(8u), high[k], p == 2u);
            b[k] = (next * 3u) & bytes;
        }
        accumulate_trits(acc, t, d, 8u * u + 5u + p);
    }
}
