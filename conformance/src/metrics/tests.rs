use super::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn kl_of_a_hand_computed_pair() {
    // p = (1/4, 3/4), q = (1/2, 1/2): KL = 1/4 ln(1/2) + 3/4 ln(3/2).
    let reference = [0.0, 3f32.ln()];
    let ours = [5.0, 5.0];
    let m = compare(RefLogits::Full(&reference), &ours, 2, &[0]).unwrap();
    let want = 0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln();
    assert!(close(m.kl.mean, want, 1e-7), "{} vs {want}", m.kl.mean);
    assert!(close(want, 0.130_812_035_941_137, 1e-12));
    assert_eq!(m.positions[0].ref_top1, 1);
    // Equal logits: the lowest id is the top-1.
    assert_eq!(m.positions[0].our_top1, 0);
    assert_eq!(m.top1_agreement, 0.0);
    // Logit differences 5 and 5 - ln 3; probability differences +1/4, -1/4.
    assert!(close(m.logit_diff.max_abs, 5.0, 1e-6));
    let rms = ((25.0 + (5.0 - 3f64.ln()).powi(2)) / 2.0).sqrt();
    assert!(close(m.logit_diff.rms, rms, 1e-6));
    assert!(close(m.prob_diff.max_abs, 0.25, 1e-7));
    assert!(close(m.prob_diff.rms, 0.25, 1e-7));
}

#[test]
fn identical_logits_give_zero_distance() {
    let logits: Vec<f32> = (0..3 * 7).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
    let tokens = [1, 5, 2];
    let m = compare(RefLogits::Full(&logits), &logits, 7, &tokens).unwrap();
    assert_eq!(m.n_positions, 3);
    assert_eq!(m.kl.max, 0.0);
    assert_eq!(m.top1_agreement, 1.0);
    assert_eq!(m.logit_diff, DiffStats::default());
    assert_eq!(m.prob_diff.max_abs, 0.0);
    assert_eq!(m.next_token_prob_diff.max_abs, 0.0);
}

#[test]
fn next_token_delta_p_uses_the_following_token() {
    // Position 0 predicts token 1. Reference gives it 3/4, ours 1/2.
    let reference = [0.0, 3f32.ln(), 0.0, 0.0];
    let ours = [0.0, 0.0, 0.0, 0.0];
    let m = compare(RefLogits::Full(&reference), &ours, 2, &[0, 1]).unwrap();
    assert!(close(m.next_token_prob_diff.max_abs, 0.25, 1e-7));
    // Only position 0 has a next token: the RMS is over one value.
    assert!(close(m.next_token_prob_diff.rms, 0.25, 1e-7));
}

#[test]
fn summary_statistics_match_hand_values() {
    let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]);
    assert_eq!((s.mean, s.median, s.max), (2.5, 2.5, 4.0));
    // llama-perplexity's percentile: 0.99 * 3 = 2.97 between 3 and 4.
    assert!(close(s.p99, 3.97, 1e-12));
    let odd = Summary::of(&[5.0, 1.0, 9.0]);
    assert_eq!(odd.median, 5.0);
    assert_eq!(Summary::of(&[]).max, 0.0);
    assert_eq!(percentile(&[1.0, 2.0], 0.0), 1.0);
    assert_eq!(percentile(&[1.0, 2.0], 1.0), 2.0);
    assert_eq!(percentile(&[1.0, 2.0], 0.5), 1.5);
}

#[test]
fn topk_kl_with_a_uniform_tail_equals_the_full_kl() {
    // Reference logits (2, 1, 0, 0); ours uniform. With k = 2 the tail (0, 0)
    // is uniform in both, so merging it loses nothing: numpy gives 0.337589.
    let full = [2.0f32, 1.0, 0.0, 0.0];
    let lse = (2f64.exp() + 1f64.exp() + 2.0).ln();
    let lps = [(2.0 - lse) as f32, (1.0 - lse) as f32];
    let ours = [0.0f32; 4];
    let topk = RefLogits::TopK {
        ids: &[0, 1],
        logprobs: &lps,
        lse: &[lse as f32],
        k: 2,
    };
    let a = compare(topk, &ours, 4, &[0]).unwrap();
    let b = compare(RefLogits::Full(&full), &ours, 4, &[0]).unwrap();
    assert!(
        close(a.kl.mean, 0.337_589_258_574_204, 1e-6),
        "{}",
        a.kl.mean
    );
    assert!(
        close(b.kl.mean, 0.337_589_258_574_204, 1e-9),
        "{}",
        b.kl.mean
    );
    assert_eq!(a.positions[0].ref_top1, 0);
    assert!(close(a.logit_diff.max_abs, 2.0, 1e-6));
}

#[test]
fn topk_kl_is_a_lower_bound_of_the_full_kl() {
    // A non-uniform tail that ours gets wrong: merging hides part of the KL.
    let full = [3.0f32, 0.0, 2.0, -2.0];
    let ours = [3.0f32, 0.0, -2.0, 2.0];
    let row: Vec<f64> = full.iter().map(|&x| f64::from(x)).collect();
    let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
    let ids = [0u32, 2];
    let lps: Vec<f32> = ids
        .iter()
        .map(|&i| (row[i as usize] - lse) as f32)
        .collect();
    let topk = RefLogits::TopK {
        ids: &ids,
        logprobs: &lps,
        lse: &[lse as f32],
        k: 2,
    };
    let a = compare(topk, &ours, 4, &[0]).unwrap().kl.mean;
    let b = compare(RefLogits::Full(&full), &ours, 4, &[0])
        .unwrap()
        .kl
        .mean;
    assert!(a > 0.0 && a < b, "top-k {a}, full {b}");
}

#[test]
fn nan_logits_fail_loudly() {
    let reference = [0.0f32, 1.0];
    let ours = [f32::NAN, 1.0];
    let m = compare(RefLogits::Full(&reference), &ours, 2, &[0]).unwrap();
    assert!(m.kl.max.is_nan() || m.kl.mean.is_nan());
    assert!(m.logit_diff.max_abs.is_nan());
    assert_eq!(argmax(&[f32::NAN, 1.0, 3.0, 3.0]), 2);
}

#[test]
fn shape_errors_are_errors() {
    let r = [0.0f32; 4];
    assert!(compare(RefLogits::Full(&r), &[0.0; 3], 2, &[0]).is_err());
    assert!(compare(RefLogits::Full(&r), &[0.0; 4], 2, &[0]).is_err());
    assert!(compare(RefLogits::Full(&r[..2]), &[0.0; 4], 2, &[0, 1]).is_err());
    let bad_id = RefLogits::TopK {
        ids: &[9],
        logprobs: &[0.0],
        lse: &[0.0],
        k: 1,
    };
    assert!(compare(bad_id, &[0.0; 2], 2, &[0]).is_err());
}

#[test]
fn worst_positions_sort_by_kl() {
    let reference = [0.0f32, 0.0, 0.0, 4.0, 0.0, 1.0];
    let ours = [0.0f32; 6];
    let m = compare(RefLogits::Full(&reference), &ours, 2, &[0, 0, 0]).unwrap();
    let w = m.worst_positions(2);
    assert_eq!(w.iter().map(|p| p.pos).collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn greedy_and_tokenization_comparisons() {
    assert_eq!(first_divergence(&[1, 2, 3], &[1, 2, 3]), None);
    assert_eq!(first_divergence(&[1, 2, 3], &[1, 4, 3]), Some(1));
    assert_eq!(greedy_steps_to_compare(&[0.5, 0.02, 0.005, 1.0], 0.01), 2);
    assert_eq!(greedy_steps_to_compare(&[0.5, 0.5], 0.01), 2);
    assert_eq!(tokens_match(&[1, 2], &[1, 2]).first_mismatch, None);
    assert!(tokens_match(&[1, 2], &[1, 2]).exact);
    assert_eq!(tokens_match(&[1, 2], &[1, 3]).first_mismatch, Some(1));
    assert_eq!(tokens_match(&[1, 2], &[1]).first_mismatch, Some(1));
    assert!(!tokens_match(&[], &[7]).exact);
}
