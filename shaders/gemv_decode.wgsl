// The GEMV kernels' leader decode with q known at compile time: the twin of decode_leader /
// coset_leader(lift(code_digits(code, q, d)), q, rule, d) of shaders/lattice_decode.wgsl (and so of
// VoronoiCode.decode on the CPU), step for step equal, but with every division by a constant, no
// dynamically indexed array and the E8 distance comparison in small integers.
//
// A library, compiled after lattice_decode.wgsl (LatticePoint, lift_d3, lift_e8) and the header that
// src/gpu/kernels/gemvDecode.ts generates for one lattice and q (`gemvDecodeWgsl` puts both in front):
//   G_Q: i32             q
//   G_DEN: i32           the rounding denominator pointScale·q (D3, Z: q; E8: 2q)
//   gemv_digits(low, high) -> LatticePoint   the base-q digits of the code high·2^32 + low
//   gemv_floor_den(p) -> vec2<i32>           (t, r) with p = G_DEN·t + r, 0 ≤ r < G_DEN, for the lifted
//                                            coordinates (|p| ≤ 5q): shifts when G_DEN is a power of
//                                            two, else one unsigned division by a constant
//   gemv_leader(low, high) -> LatticePoint   the leader of a code: gemv_leader_d3 / _e8 / _z8 below.
//
// Rounding identities used (exact integer algebra, den = G_DEN, p = den·t + r, 0 ≤ r < den):
//   round_rational(p, den)            = floor((2p + den) / (2den)) = t + [2r ≥ den],  error p − den·f = r − den·[2r ≥ den];
//   round_rational(2p − den, 2den)    = floor(4p / (4den))         = t,               error (2p − den) − 2den·t = 2r − den.
// so the two D8 roundings of E8 (lattice_decode.wgsl: nearest_e8) share one division.

// nearest_dn's parity fix as a select per coordinate (no dynamic index): the coordinate `worst` moves
// by `delta` when `odd`.
fn gemv_fix(i: u32, worst: u32, delta: i32, odd: bool) -> i32 {
  return select(0, delta, odd && i == worst);
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

// coset_leader for D3 (rule NEAREST_D, den = q): p − q·Q_D3(p / q), p the lifted point.
fn gemv_leader_d3(p: LatticePoint) -> LatticePoint {
  var f = LatticePoint();
  var parity = 0;
  var worst = 0u;
  var worst_abs = -1;
  var worst_error = 0;
  for (var i = 0u; i < 3u; i = i + 1u) {
    let tr = gemv_floor_den(p[i]);
    let up = 2 * tr.y >= G_DEN;
    let value = tr.x + select(0, 1, up);
    let e = tr.y - select(0, G_DEN, up);
    f[i] = value;
    parity = parity + value;
    let magnitude = abs(e);
    let worse = magnitude > worst_abs;
    worst_abs = select(worst_abs, magnitude, worse);
    worst = select(worst, i, worse);
    worst_error = select(worst_error, e, worse);
  }
  let odd = (parity & 1) != 0;
  let delta = select(1, -1, worst_error < 0);
  var leader = LatticePoint();
  for (var i = 0u; i < 3u; i = i + 1u) {
    leader[i] = p[i] - G_Q * (f[i] + gemv_fix(i, worst, delta, odd));
  }
  return leader;
}

// coset_leader for E8 (rule NEAREST_E8, den = 2q, doubled coordinates): p − q·Q_E8(p / den). The
// candidates a = Q_D8(p/den) and b = Q_D8((2p − den)/(2den)) as in nearest_e8; a wins iff
// 4·Σ e1² ≤ Σ e2² (e1 = p − den·a, e2 = 2p − den·(2b + 1), after the parity fixes): the CPU's own
// comparison, here in i32 because den ≤ 128 (q ≤ 64): |e1| ≤ den, |e2| ≤ 2den, so 4·Σ e1² ≤ 32·den²
// < 2^20. The fix moves the worst coordinate by δ = ±1 towards its error, which changes its squared
// error from e² to (|e| − d)² (d = den, resp. 2den for b): Σ after = Σ before + d·(d − 2|e_worst|).
fn gemv_leader_e8(p: LatticePoint) -> LatticePoint {
  var fa = LatticePoint();
  var fb = LatticePoint();
  var parity_a = 0;
  var parity_b = 0;
  var sum_a = 0; // Σ e1² before the fix
  var sum_b = 0; // Σ e2² before the fix
  var worst_a = 0u;
  var abs_a = -1;
  var error_a = 0;
  var worst_b = 0u;
  var abs_b = -1;
  var error_b = 0;
  for (var i = 0u; i < 8u; i = i + 1u) {
    let tr = gemv_floor_den(p[i]);
    let up = 2 * tr.y >= G_DEN;
    let a = tr.x + select(0, 1, up);
    let e1 = tr.y - select(0, G_DEN, up);
    let e2 = 2 * tr.y - G_DEN;
    fa[i] = a;
    fb[i] = tr.x;
    parity_a = parity_a + a;
    parity_b = parity_b + tr.x;
    sum_a = sum_a + e1 * e1;
    sum_b = sum_b + e2 * e2;
    let magnitude_a = abs(e1);
    let worse_a = magnitude_a > abs_a;
    abs_a = select(abs_a, magnitude_a, worse_a);
    worst_a = select(worst_a, i, worse_a);
    error_a = select(error_a, e1, worse_a);
    let magnitude_b = abs(e2);
    let worse_b = magnitude_b > abs_b;
    abs_b = select(abs_b, magnitude_b, worse_b);
    worst_b = select(worst_b, i, worse_b);
    error_b = select(error_b, e2, worse_b);
  }
  let odd_a = (parity_a & 1) != 0;
  let odd_b = (parity_b & 1) != 0;
  if (odd_a) {
    sum_a = sum_a + G_DEN * (G_DEN - 2 * abs_a);
  }
  if (odd_b) {
    sum_b = sum_b + 2 * G_DEN * (2 * G_DEN - 2 * abs_b);
  }
  let use_a = 4 * sum_a <= sum_b;
  // The winner in doubled coordinates: 2a, or 2b + 1; its fix moves one coordinate by 2δ.
  let worst = select(worst_b, worst_a, use_a);
  let odd = select(odd_b, odd_a, use_a);
  let delta = select(select(2, -2, error_b < 0), select(2, -2, error_a < 0), use_a);
  var leader = LatticePoint();
  for (var i = 0u; i < 8u; i = i + 1u) {
    let doubled = select(2 * fb[i] + 1, 2 * fa[i], use_a) + gemv_fix(i, worst, delta, odd);
    leader[i] = p[i] - G_Q * doubled;
  }
  return leader;
}
