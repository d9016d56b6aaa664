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
// The part between the "generic" markers is identical in every group's
// shader (a test checks it); its entry points see weights only through dequant8.

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

// ---- generic: begin ----
// Shared by the weight-type groups: params, bindings, byte readers and the
// three entry points, which see the weights only through dequant8(row, g).

struct MatMulParams {
    n_in: u32,
    n_out: u32,
    n_cols: u32,
    row_bytes: u32,
}

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: MatMulParams;

// Eight consecutive values: elements 8g..8g+3 in a, 8g+4..8g+7 in b.
struct W8 {
    a: vec4<f32>,
    b: vec4<f32>,
}

// The little-endian u32 at any byte offset of `weights`.
fn read_u32(byte: u32) -> u32 {
    let i = byte >> 2u;
    let shift = (byte & 3u) * 8u;
    let lo = weights[i];
    // A shift by 32 is not a no-op in WGSL (it is taken mod 32): branch instead.
    if shift == 0u {
        return lo;
    }
    return (lo >> shift) | (weights[i + 1u] << (32u - shift));
}

// The u16 at an even byte offset.
fn read_u16(byte: u32) -> u32 {
    return (weights[byte >> 2u] >> ((byte & 2u) * 8u)) & 0xFFFFu;
}

// IEEE binary16 bits to f32, exact for every value including subnormals
// (unpack2x16float may flush those to zero, and ggml does not).
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let mag = h & 0x7FFFu;
    if mag >= 0x7C00u {
        return bitcast<f32>(sign | 0x7F800000u | ((mag & 0x3FFu) << 13u));
    }
    if mag >= 0x0400u {
        // Rebias the exponent from 15 to 127: add (127 - 15) << 23.
        return bitcast<f32>(sign | ((mag << 13u) + 0x38000000u));
    }
    let v = f32(mag) * 0x1p-24f;
    return select(v, -v, sign != 0u);
}

// The f16 at an even byte offset, as f32.
fn read_f16(byte: u32) -> f32 {
    return f16_bits_to_f32(read_u16(byte));
}

// Activations k..k+7 of column `col`, zero past n_in (only float weights
// allow an n_in that is not a multiple of 8).
fn load_x8(col: u32, k: u32) -> W8 {
    let n_in = params.n_in;
    let base = col * n_in + k;
    if k + 8u <= n_in {
        return W8(
            vec4<f32>(x[base], x[base + 1u], x[base + 2u], x[base + 3u]),
            vec4<f32>(x[base + 4u], x[base + 5u], x[base + 6u], x[base + 7u]),
        );
    }
    var v = array<f32, 8>();
    for (var i = 0u; i < 8u; i++) {
        if k + i < n_in {
            v[i] = x[base + i];
        }
    }
    return W8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

// matvec (decode, 1..8 columns): a workgroup of 64 invocations owns MV_ROWS
// consecutive weight rows; invocation t decodes groups t, t + 64, ... of each
// row once and multiplies them with every column, so weights (the traffic
// that matters) are read once and x is reused across the rows. The partial
// sums then meet in a tree reduction in workgroup memory, which needs no
// subgroup support; a subgroup variant would replace only that reduction
// (subgroupAdd, then one value per subgroup) in a shader of its own that
// declares SUBGROUP. Workgroups past 65535 fold into 2-D.
const MV_WG: u32 = 64u;
const MV_ROWS: u32 = 2u;
const MV_COLS: u32 = 8u;
const MV_SUMS: u32 = 16u;

var<workgroup> mv_partial: array<f32, 1024>;

@compute @workgroup_size(64)
fn matvec(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first_row = (wid.x + wid.y * nwg.x) * MV_ROWS;
    if first_row >= params.n_out {
        return;
    }
    let n_cols = params.n_cols;
    let groups = (params.n_in + 7u) / 8u;
    var acc = array<f32, MV_SUMS>();
    for (var g = lid; g < groups; g += MV_WG) {
        var w: array<W8, MV_ROWS>;
        for (var r = 0u; r < MV_ROWS; r++) {
            // Past the last row, decode the last row again; its sums are dropped.
            w[r] = dequant8(min(first_row + r, params.n_out - 1u), g);
        }
        for (var c = 0u; c < MV_COLS; c++) {
            if c < n_cols {
                let xv = load_x8(c, g * 8u);
                for (var r = 0u; r < MV_ROWS; r++) {
                    acc[r * MV_COLS + c] += dot(w[r].a, xv.a) + dot(w[r].b, xv.b);
                }
            }
        }
    }
    for (var k = 0u; k < MV_SUMS; k++) {
        mv_partial[k * MV_WG + lid] = acc[k];
    }
    workgroupBarrier();
    for (var stride = MV_WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            for (var k = 0u; k < MV_SUMS; k++) {
                if k % MV_COLS < n_cols {
                    mv_partial[k * MV_WG + lid] += mv_partial[k * MV_WG + lid + stride];
                }
            }
        }
        workgroupBarrier();
    }
    if lid < MV_SUMS {
        let row = first_row + lid / MV_COLS;
        let c = lid % MV_COLS;
        if row < params.n_out && c < n_cols {
            y[c * params.n_out + row] = mv_partial[lid * MV_WG];
        }
    }
}

// matmul (prefill): each workgroup computes a tile of MM_OUT weight rows by
// MM_COLS columns (tokens). Per step of MM_K = 32 elements, each of the 256
// invocations decodes one group of 8 weights into mm_w and loads 4
// activations into mm_x, so W is read once per 32 tokens instead of once per
// token; each invocation then accumulates 4 outputs x 2 columns from
// workgroup memory. The tiles are stored k-major, so the inner loop does one
// vec4 and one vec2 load for 8 multiply-adds. 12 KiB of workgroup memory fits
// WebGPU's 16 KiB minimum. Rows, columns and elements past the ends are
// zeros, so any n_out, n_cols and (for float weights) n_in work.
const MM_OUT: u32 = 64u;
const MM_COLS: u32 = 32u;
const MM_K: u32 = 32u;

// [k][out / 4] and [k][col / 2].
var<workgroup> mm_w: array<vec4<f32>, 512>;
var<workgroup> mm_x: array<vec2<f32>, 512>;

@compute @workgroup_size(256)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n_in = params.n_in;
    let out0 = wid.x * MM_OUT;
    let col0 = wid.y * MM_COLS;
    // What this invocation computes: outputs out0 + 4 * to.., columns col0 + 2 * tc..
    let to = lid % 16u;
    let tc = lid / 16u;
    // What it loads: group w_grp of row w_row, and 4 activations of column x_col.
    let w_row = lid / 4u;
    let w_grp = lid % 4u;
    let x_col = lid / 8u;
    let x_k = (lid % 8u) * 4u;
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    for (var k0 = 0u; k0 < n_in; k0 += MM_K) {
        var w = W8(vec4<f32>(), vec4<f32>());
        if out0 + w_row < params.n_out && k0 + w_grp * 8u < n_in {
            w = dequant8(out0 + w_row, k0 / 8u + w_grp);
        }
        for (var i = 0u; i < 4u; i++) {
            mm_w[(w_grp * 8u + i) * 16u + w_row / 4u][w_row % 4u] = w.a[i];
            mm_w[(w_grp * 8u + 4u + i) * 16u + w_row / 4u][w_row % 4u] = w.b[i];
        }
        var xv = vec4<f32>();
        if col0 + x_col < params.n_cols {
            let base = (col0 + x_col) * n_in + k0 + x_k;
            for (var i = 0u; i < 4u; i++) {
                if k0 + x_k + i < n_in {
                    xv[i] = x[base + i];
                }
            }
        }
        for (var i = 0u; i < 4u; i++) {
            mm_x[(x_k + i) * 16u + x_col / 2u][x_col % 2u] = xv[i];
        }
        workgroupBarrier();
        for (var k = 0u; k < MM_K; k++) {
            let wv = mm_w[k * 16u + to];
            let xk = mm_x[k * 16u + tc];
            acc0 += wv * xk.x;
            acc1 += wv * xk.y;
        }
        workgroupBarrier();
    }
    let n_out = params.n_out;
    for (var i = 0u; i < 4u; i++) {
        let o = out0 + to * 4u + i;
        let c = col0 + tc * 2u;
        if o < n_out && c < params.n_cols {
            y[c * n_out + o] = acc0[i];
        }
        if o < n_out && c + 1u < params.n_cols {
            y[(c + 1u) * n_out + o] = acc1[i];
        }
    }
}

// dequantize: y = W as n_out rows of n_in f32, one invocation per group of 8.
// Not used for inference: it lets tests compare the GPU decoder with the CPU
// dequantizer value by value. Workgroups past 65535 fold into 2-D.
@compute @workgroup_size(64)
fn dequantize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n_in = params.n_in;
    let groups = (n_in + 7u) / 8u;
    let idx = (wid.x + wid.y * nwg.x) * 64u + lid;
    if groups == 0u || idx / groups >= params.n_out {
        return;
    }
    let row = idx / groups;
    let g = idx % groups;
    let w = dequant8(row, g);
    let base = row * n_in + g * 8u;
    for (var i = 0u; i < 4u; i++) {
        if g * 8u + i < n_in {
            y[base + i] = w.a[i];
        }
        if g * 8u + 4u + i < n_in {
            y[base + 4u + i] = w.b[i];
        }
    }
}
// ---- generic: end ----
