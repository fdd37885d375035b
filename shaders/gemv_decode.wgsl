// The leader decode with q known at compile time (the GEMV kernels' and, where both operands share
// lattice and q, the E8 product's): the twin of decode_leader / coset_leader(lift(code_digits(code,
// q, d)), q, rule, d) of shaders/lattice_decode.wgsl (and so of VoronoiCode.decode on the CPU), equal
// leader for leader, ties included (test/gpu/latticeDequantize.test.ts compares them code by code),
// but with every division by a constant, no dynamically indexed array, the leader taken as the
// rounding error itself and E8's distance comparison reduced to a linear one in small integers.
//
// A library, compiled after lattice_decode.wgsl (LatticePoint, lift_d3, lift_e8) and the header that
// src/gpu/kernels/gemvDecode.ts generates for one lattice and q (`gemvDecodeWgsl` puts both in front):
//   G_Q: i32             q
//   G_DEN: i32           the rounding denominator pointScale·q (D3, Z: q; E8: 2q)
//   gemv_digits(low, high) -> LatticePoint   the base-q digits of the code high·2^32 + low
//   gemv_floor_den(p) -> vec2<i32>           (t, r) with p = G_DEN·t + r, 0 ≤ r < G_DEN, for the lifted
//                                            coordinates (|p| ≤ 5q): shifts when G_DEN is a power of
//                                            two, else one unsigned division by a constant
//   gemv_leader(low, high) -> LatticePoint   the leader of a code: gemv_leader_d3 / _e8 / _z8 below,
//                                            or for E8 with q ≤ 16 gemv_leader_e8_bytes
//                                            (shaders/gemv_decode_e8_bytes.wgsl, appended after this
//                                            file, with gemv_digit_bytes and gemv_lane_split in the
//                                            header)
//
// Rounding identities used (exact integer algebra, den = G_DEN, p = den·t + r, 0 ≤ r < den):
//   round_rational(p, den)            = floor((2p + den) / (2den)) = t + [2r ≥ den],  error p − den·f = r − den·[2r ≥ den];
//   round_rational(2p − den, 2den)    = floor(4p / (4den))         = t,               error (2p − den) − 2den·t = 2r − den.
// so the two D8 roundings of E8 (lattice_decode.wgsl: nearest_e8) share one division.

// The leader is the winning candidate's rounding error: p − den·f = e (den = G_DEN), so no rounded
// point is kept, only the errors. nearest_dn's parity fix moves the coordinate of largest |e| (the
// first of equal ones: `worst`, tracked with selects) by δ = ±1 towards its error (+1 for e = 0),
// which moves that coordinate of the leader by −den·δ: `gemv_fix` with `shift` = −den·δ.
fn gemv_fix(i: u32, worst: u32, shift: i32, odd: bool) -> i32 {
  return select(0, shift, odd && i == worst);
}

// coset_leader for Z^8 (rule NEAREST_Z, den = q, the digits themselves): u − q·round(u / q).
fn gemv_leader_z8(p: LatticePoint) -> LatticePoint {
  var leader = LatticePoint();
  for (var i = 0u; i < 8u; i = i + 1u) {
    let tr = gemv_floor_den(p[i]);
    leader[i] = p[i] - G_Q * (tr.x + select(0, 1, 2 * tr.y >= G_DEN));
  }
  return leader;
}

// coset_leader for D3 (rule NEAREST_D, den = q): p − q·Q_D3(p / q), p the lifted point; the leader is
// the rounding error with the parity fix (see gemv_fix).
fn gemv_leader_d3(p: LatticePoint) -> LatticePoint {
  var error = LatticePoint();
  var parity = 0;
  var worst = 0u;
  var worst_abs = -1;
  var worst_error = 0;
  for (var i = 0u; i < 3u; i = i + 1u) {
    let tr = gemv_floor_den(p[i]);
    let up = 2 * tr.y >= G_DEN;
    let e = tr.y - select(0, G_DEN, up);
    error[i] = e;
    parity = parity + tr.x + select(0, 1, up);
    let magnitude = abs(e);
    let worse = magnitude > worst_abs;
    worst_abs = select(worst_abs, magnitude, worse);
    worst = select(worst, i, worse);
    worst_error = select(worst_error, e, worse);
  }
  let odd = (parity & 1) != 0;
  let shift = select(-G_DEN, G_DEN, worst_error < 0);
  var leader = LatticePoint();
  for (var i = 0u; i < 3u; i = i + 1u) {
    leader[i] = error[i] + gemv_fix(i, worst, shift, odd);
  }
  return leader;
}

// coset_leader for E8 (rule NEAREST_E8, den = 2q, doubled coordinates): p − q·Q_E8(p / den), with
// the candidates a = Q_D8(p/den) and b = Q_D8((2p − den)/(2den)) of nearest_e8 and the CPU's choice:
// a wins iff 4·Σ e1² ≤ Σ e2² after the parity fixes (e1 = p − den·a, e2 = 2p − den·(2b + 1)). Per
// coordinate, with p = den·t + r (0 ≤ r < den) and up = [r ≥ q] (2r ≥ den: a rounds up):
//   a = t + up, e1 = r − den·up, m = |e1| = min(r, den − r);  b = t, e2 = 2r − den, |e2| = den − 2m;
// so a's worst coordinate (largest |e1|, the first of equal ones) is the first of largest m, b's (largest
// |e2|) the first of smallest m, and every error is known from m and up: e1 < 0 iff up, e2 < 0 iff not.
// The fix moves the worst coordinate by δ = ±1 towards its error (+1 for a zero error), changing its
// squared error from e² to (|e| − d)² (d = den for a, 2den for b). With M = Σ m, A = max m, B = min m:
//   Σ e2² = 8den² − 4den·M + 4·Σ m², 4·Σ e1² = 4·Σ m²,
// so the squares cancel and, divided by 2den, the choice is linear in small integers:
//   a wins iff [odd a]·(den − 2A) ≤ 2den − M + 2·[odd b]·B   (|·| ≤ 16den: exact in i32).
// The leader is the winner's error in doubled coordinates (p − q·2a = e1, p − q·(2b + 1) = e2 / 2), and
// with h = e2 / 2 = r − q and s = ±q (the sign of h, + for h = 0):
//   a: e1 = h − s, fixed h + s;   b: h, fixed h − 2s   (the fix: −den·δ, δ = −sign(e) as above).
fn gemv_leader_e8(p: LatticePoint) -> LatticePoint {
  var half_e2 = LatticePoint(); // h = r − q per coordinate
  var ups = 0;                  // Σ up
  var floors = 0;               // Σ t
  var m_sum = 0;                // M
  var a_worst = 0u;
  var a_m = -1;                 // A
  var b_worst = 0u;
  var b_m = G_DEN + 1;          // B
  for (var i = 0u; i < 8u; i = i + 1u) {
    let tr = gemv_floor_den(p[i]);
    let up = tr.y >= G_Q;
    let m = select(tr.y, G_DEN - tr.y, up);
    half_e2[i] = tr.y - G_Q;
    ups = ups + select(0, 1, up);
    floors = floors + tr.x;
    m_sum = m_sum + m;
    let a_worse = m > a_m;
    a_m = select(a_m, m, a_worse);
    a_worst = select(a_worst, i, a_worse);
    let b_worse = m < b_m;
    b_m = select(b_m, m, b_worse);
    b_worst = select(b_worst, i, b_worse);
  }
  let odd_a = ((floors + ups) & 1) != 0;
  let odd_b = (floors & 1) != 0;
  let use_a = select(0, G_DEN - 2 * a_m, odd_a) <= 2 * G_DEN - m_sum + select(0, 2 * b_m, odd_b);
  // The coordinate the winner's parity fix moves (8: none), and h's multiple of s with and without it.
  let fixed = select(8u, select(b_worst, a_worst, use_a), select(odd_b, odd_a, use_a));
  let with_fix = select(-2, 1, use_a);
  let without_fix = select(0, -1, use_a);
  var leader = LatticePoint();
  for (var i = 0u; i < 8u; i = i + 1u) {
    let h = half_e2[i];
    leader[i] = h + select(-G_Q, G_Q, h >= 0) * select(without_fix, with_fix, i == fixed);
  }
  return leader;
}
