// copy_vec4: dst[i] = src[i] for n_vec4 16-byte elements.
//
// The simplest memory-bound kernel there is: one 16-byte load and one store per
// invocation, nothing else. Its GB/s on a device is the bandwidth ceiling that
// seldon-bench divides every other kernel's throughput by.
//
// Layout: src and dst are flat arrays of vec4<f32> (the byte count must be a
// multiple of 16; the host checks). 256 invocations per workgroup is a size
// every backend runs at full occupancy. Past 65535 workgroups the host folds the
// grid into 2-D, so the linear index is wid.x + wid.y * num_workgroups.x, and the
// invocations past n_vec4 (the fold rounds up) return early.

struct CopyParams {
    n_vec4: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: CopyParams;

@compute @workgroup_size(256)
fn copy_vec4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i < params.n_vec4 {
        dst[i] = src[i];
    }
}
