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
// Unpacking is integer arithmetic only. matvec_ternary (decode, which the
// host uses instead of the generic matvec) never multiplies by a weight: per
// group of 8 it adds the activations whose trit is +1, subtracts those whose
// trit is -1, skips the zeros (selects), then scales the sum once by d. The
// generic part (identical in every group's shader, a test checks it) brings
// the tiled matmul and dequantize, which take f32 weights (t - 1) * d as
// ggml's dequantizer computes them; matmul reuses each one for 32 columns.

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

// sum_i (t_i - 1) * x_i over four codes by adding and subtracting activations.
fn trit_sum4(t: vec4<u32>, xv: vec4<f32>) -> f32 {
    let z = vec4<f32>();
    let plus = select(z, xv, t >= vec4(2u)) + select(z, xv, t == vec4(3u));
    let v = plus - select(z, xv, t == vec4(0u));
    return (v.x + v.y) + (v.z + v.w);
}

// The generic matvec with trit_sum4 for the products: the same workgroup shape,
// 2-D folding and tree reduction, so that the host dispatches both alike.
@compute @workgroup_size(64)
fn matvec_ternary(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first_row = (wid.x + wid.y * nwg.x) * MV_ROWS;
    if first_row >= params.n_out {
        return;
    }
    let n_cols = params.n_cols;
    var acc = array<f32, MV_SUMS>();
    for (var g = lid; g < params.n_in / 8u; g += MV_WG) {
        var t: array<T8, MV_ROWS>;
        for (var r = 0u; r < MV_ROWS; r++) {
            // Past the last row, decode the last row again; its sums are dropped.
            t[r] = trits8(min(first_row + r, params.n_out - 1u), g);
        }
        for (var c = 0u; c < min(n_cols, MV_COLS); c++) {
            let xv = load_x8(c, g * 8u);
            for (var r = 0u; r < MV_ROWS; r++) {
                let sum = trit_sum4(t[r].a, xv.a) + trit_sum4(t[r].b, xv.b);
                acc[r * MV_COLS + c] += sum * t[r].d;
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
                mv_partial[k * MV_WG + lid] += mv_partial[k * MV_WG + lid + stride];
            }
        }
        workgroupBarrier();
    }
    let row = first_row + lid / MV_COLS;
    if lid < MV_SUMS && row < params.n_out && lid % MV_COLS < n_cols {
        y[(lid % MV_COLS) * params.n_out + row] = mv_partial[lid * MV_WG];
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
