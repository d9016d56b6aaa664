// Elementwise binary ops and scaling over f32 tensors:
//   add:   y[i] = a[i] + b[i % nb]
//   mul:   y[i] = a[i] * b[i % nb]
//   scale: y[i] = a[i] * scale
//
// b is broadcast along the rows of a when nb < n (a bias added to every token,
// a per-channel weight); nb == n is the plain same-shape case (residual add).
// The host checks that nb divides n.
//
// One element per invocation, 256 per workgroup: these ops are memory bound, and
// a flat 1-D grid (folded to 2-D past 65535 workgroups; linear index
// wid.x + wid.y * num_workgroups.x) keeps every access coalesced.

struct ElementwiseParams {
    n: u32,
    nb: u32,
    scale: f32,
    _pad0: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: ElementwiseParams;

fn element_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(256)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i < params.n {
        y[i] = a[i] + b[i % params.nb];
    }
}

@compute @workgroup_size(256)
fn mul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i < params.n {
        y[i] = a[i] * b[i % params.nb];
    }
}

@compute @workgroup_size(256)
fn scale(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i < params.n {
        y[i] = a[i] * params.scale;
    }
}
