// softmax: y[r, i] = exp(scale * x[r, i] - m_r) / sum_j exp(scale * x[r, j] - m_r),
//          m_r = max_j scale * x[r, j]
//
// ggml's SOFT_MAX with a scale and no mask. x and y are rows x n f32,
// row-major. Subtracting the row maximum keeps every exp in (0, 1], so no row
// overflows whatever its magnitude.
//
// One workgroup per row (folded to 2-D past 65535 rows), 256 invocations
// striding over the row: a max reduction, then each invocation writes its
// exps into y while summing them, a sum reduction, and a final pass scaling
// its own elements of y by 1 / sum (each invocation rereads only what it wrote
// itself, so that pass needs no barrier). Reductions are trees in workgroup
// memory, so no subgroup support is needed.

struct SoftmaxParams {
    n: u32,
    rows: u32,
    scale: f32,
    _pad0: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: SoftmaxParams;

var<workgroup> partial: array<f32, WG>;

fn reduce_max(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] = max(partial[lid], partial[lid + stride]);
        }
        workgroupBarrier();
    }
    let result = partial[0];
    // Everyone has read the result before the buffer is reused.
    workgroupBarrier();
    return result;
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}

@compute @workgroup_size(256)
fn softmax(
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
    let scale = params.scale;

    // -f32::MAX: finite, so exp(v - m) never sees inf - inf.
    var m = -3.40282347e38;
    for (var i = lid; i < n; i += WG) {
        m = max(m, x[base + i] * scale);
    }
    m = reduce_max(lid, m);

    var sum = 0.0;
    for (var i = lid; i < n; i += WG) {
        let e = exp(x[base + i] * scale - m);
        y[base + i] = e;
        sum += e;
    }
    let inv = 1.0 / reduce_sum(lid, sum);

    for (var i = lid; i < n; i += WG) {
        y[base + i] *= inv;
    }
}
