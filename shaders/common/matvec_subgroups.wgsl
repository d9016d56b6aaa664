// matvec_subgroups: the decode entry point of shaders/common/matmul_generic.wgsl
// with the activations shared through subgroup broadcasts, for devices with
// SUBGROUP and subgroups of at least 8 invocations (the host checks both and
// otherwise uses matvec_portable.wgsl). The registry appends this file after
// matmul_generic.wgsl to make the `matmul_<group>_subgroups` shaders.
//
// In the portable `matvec` every invocation loads the same 32 activations per
// chunk. On llvmpipe a load inside a loop is a per-lane gather even when its
// address is uniform, so those loads cost eight scalar loads each and took two
// thirds of the time. Here lane l (of every 8) loads activations 4l..4l+3 of
// the chunk and subgroupBroadcast hands each vec4 to all lanes (on llvmpipe
// an extract from the SIMD register; on a GPU a register shuffle instead of 8
// loads). All lanes stay active throughout (matvec_rows clamps the row).

var<private> mv_lane: u32;

// Activations 32c..32c+31 of column `col`, a whole chunk.
fn x32(col: u32, c: u32) -> W32 {
    let base = col * params.n_in + c * 32u + 4u * (mv_lane % 8u);
    var mine: vec4<f32>;
    if !MV_PARTIAL {
        // n_in is a multiple of 32, so base is a multiple of 4.
        mine = x4[base >> 2u];
    } else {
        mine = vec4<f32>(x[base], x[base + 1u], x[base + 2u], x[base + 3u]);
    }
    var v: W32;
    v[0] = subgroupBroadcast(mine, 0u);
    v[1] = subgroupBroadcast(mine, 1u);
    v[2] = subgroupBroadcast(mine, 2u);
    v[3] = subgroupBroadcast(mine, 3u);
    v[4] = subgroupBroadcast(mine, 4u);
    v[5] = subgroupBroadcast(mine, 5u);
    v[6] = subgroupBroadcast(mine, 6u);
    v[7] = subgroupBroadcast(mine, 7u);
    return v;
}

// The partial chunk that ends a float row, zero past n_in (once per row).
fn x32_tail(col: u32, c: u32) -> W32 {
    return x32_masked(col, c);
}

@compute @workgroup_size(64)
fn matvec_subgroups(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    mv_lane = lane;
    matvec_rows(wid, nwg, lid);
}
