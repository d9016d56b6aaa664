// rms_norm: y[r, i] = x[r, i] / sqrt(mean_j(x[r, j]^2) + eps) * weight[i]
//
// ggml's RMS_NORM followed by the multiply with the norm weight (attn_norm,
// ffn_norm, output_norm), fused. x and y are rows x n f32, row-major; weight has
// n elements. Qwen3's per-head q_norm/k_norm is the same computation with
// rows = tokens * heads and n = head_dim (the heads of a token are contiguous).
//
// One workgroup per row: 256 invocations stride over the row accumulating
// squares (coalesced), then a tree reduction in workgroup memory. This needs no
// subgroup support, so it runs everywhere; rows of a few thousand elements keep
// each invocation busy with ~n/256 loads. Rows past 65535 fold the grid into 2-D
// (row index wid.x + wid.y * num_workgroups.x); the whole workgroup returns
// together past the last row, so the barriers stay uniform.

struct RmsNormParams {
    n: u32,
    rows: u32,
    eps: f32,
    _pad0: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: RmsNormParams;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn rms_norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if row >= params.rows {
        return;
    }
    let n = params.n;
    let base = row * n;

    var sum = 0.0;
    for (var i = lid; i < n; i += WG) {
        let v = x[base + i];
        sum += v * v;
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let scale = inverseSqrt(partial[0] / f32(n) + params.eps);

    for (var i = lid; i < n; i += WG) {
        y[base + i] = x[base + i] * scale * weight[i];
    }
}
