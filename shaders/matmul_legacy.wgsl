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
// Everything between the "generic" markers is identical in every
// matmul_<group>.wgsl (a test checks it): the entry points only ever see
// eight consecutive weights at a time through dequant8(row, g), so a new group
// of types copies that part and writes its own dequant8. The entry points are
// documented there.

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
