// swiglu: y[i] = silu(gate[i]) * up[i], silu(x) = x * sigmoid(x); and
// relu_sqr: y[i] = max(gate[i], 0)^2 (squared ReLU, the activation of BitNet's
// feed-forward block: llama.cpp's LLM_FFN_RELU_SQR; `up` is unused).
//
// The activations of the feed-forward block, between the ffn_gate / ffn_up
// projections and ffn_down. gate, up and y are flat f32 arrays of n
// elements (tokens x n_ff, row-major).
//
// sigmoid is evaluated as 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x))
// for x < 0, so exp never overflows: WGSL leaves an overflowing exp
// indeterminate rather than infinite.
//
// One element per invocation, 256 per workgroup, flat grid folded to 2-D past
// 65535 workgroups (linear index wid.x + wid.y * num_workgroups.x).

struct SwigluParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: SwigluParams;

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

@compute @workgroup_size(256)
fn swiglu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i < params.n {
        let g = gate[i];
        y[i] = g * sigmoid(g) * up[i];
    }
}

// ggml's relu then sqr: x > 0 ? x : 0 (a NaN gives 0, where max() may not),
// then r * r, exactly as the CPU computes it.
@compute @workgroup_size(256)
fn relu_sqr(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i < params.n {
        let g = gate[i];
        let r = select(0.0, g, g > 0.0);
        y[i] = r * r;
    }
}
