// matvec_split: the decode entry point of shaders/common/matmul_generic.wgsl
// for GPUs: one subgroup per weight row, reduced with subgroupAdd. The
// registry appends it after matmul_generic.wgsl and matvec_portable.wgsl to
// make the `matmul_<group>_split` shaders, for devices with SUBGROUP whose
// subgroups hold at most 64 invocations.
//
// In `matvec` (matmul_generic.wgsl) each invocation walks a whole row, so the
// lanes of a warp read addresses row_bytes apart: one cache line per lane per
// load. Here lane l of a subgroup of S takes chunks of 32 weights l, l + S,
// l + 2S, ... of one row, so a warp's loads cover consecutive blocks of that
// row, and the partial sums meet in one subgroupAdd per column. The subgroup size is read at run time: the host dispatches enough
// workgroups for 64 / subgroup_min_size rows each, at most 4096 of them
// (SPLIT_MAX_WORKGROUPS), and a grid-stride loop over rows covers the rest
// (more rows, or subgroups wider than the narrowest).

// x32 and x32_tail (activations loaded per invocation: each lane is at a
// different unit) come from common/matvec_portable.wgsl, which the registry
// appends before this file (its `matvec` entry point is unused here).

@compute @workgroup_size(64)
fn matvec_split(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
) {
    // Every binding is used, as in matvec_rows (n_cols is never 0 here).
    if params.n_cols == 0u {
        y[0] = f32(weights[0] + weights4[0].x) + x[0] + x4[0].x;
    }
    let n_out = params.n_out;
    // Lanes take chunks of 32, not the group's units: a k-quant or ternary
    // super-block of 256 per lane would leave 24 of 32 lanes idle on a
    // 2048-wide row. Groups whose unit is a chunk (legacy blocks, float
    // chunks) decode it with matvec_unit; the others with dequant32.
    let units = params.n_in / 32u;
    // The lane that adds the last, partial chunk of a float row.
    let tail_lane = units % sg_size;
    let has_tail = MV_PARTIAL && units * 32u < params.n_in;
    let stride = nwg.x * nwg.y * n_sg;
    // `row` is the same for the whole subgroup, so is every loop exit below
    // but the unit loop's, after which the subgroup reconverges.
    for (var row = (wid.x + wid.y * nwg.x) * n_sg + sg_id; row < n_out; row += stride) {
        var acc = Acc();
        for (var c = lane; c < units; c += sg_size) {
            if MV_UNIT == 32u {
                matvec_unit(row, c, &acc);
            } else {
                accumulate32(&acc, dequant32(row, c), c);
            }
        }
        if has_tail && lane == tail_lane {
            matvec_tail(row, units, &acc);
        }
        for (var col = 0u; col < MV_COLS; col++) {
            let sum = subgroupAdd(acc[col]);
            if lane == 0u {
                y[col * n_out + row] = sum;
            }
        }
    }
}
