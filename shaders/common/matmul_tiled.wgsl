// matmul_tiled: the prefill and test entry points of the portable
// `matmul_<group>` shaders (the registry appends it after
// common/matmul_generic.wgsl; the decode-only variants `_subgroups`,
// `_uniform` and `_split` leave it out). `matmul` reads weights through the
// group's dequant8, `dequantize` writes them as f32 for the decoder tests.

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

// [k][out / 4] and [k][col / 2], of TS: f32 (common/tile_f32.wgsl) or, in the
// `_f16` shaders, f16 (common/tile_f16.wgsl: half the workgroup memory and
// its traffic; products and sums stay f32, as llama.cpp's Vulkan matmul does
// with f16 tiles).
var<workgroup> mm_w: array<vec4<TS>, 512>;
var<workgroup> mm_x: array<vec2<TS>, 512>;

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
            mm_w[(w_grp * 8u + i) * 16u + w_row / 4u][w_row % 4u] = TS(w.a[i]);
            mm_w[(w_grp * 8u + 4u + i) * 16u + w_row / 4u][w_row % 4u] = TS(w.b[i]);
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
            mm_x[(x_k + i) * 16u + x_col / 2u][x_col % 2u] = TS(xv[i]);
        }
        workgroupBarrier();
        for (var k = 0u; k < MM_K; k++) {
            let wv = vec4<f32>(mm_w[k * 16u + to]);
            let xk = vec2<f32>(mm_x[k * 16u + tc]);
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
