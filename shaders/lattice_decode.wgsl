// The integer lattice rules, once for every kernel: exact rational rounding, the nearest points of
// Z^d, D_d and E8, the base-q digits of a code and the Voronoi decode (the coset leader), the WGSL
// twins of src/lattices/rationalRounding.ts, zLattice.ts, d3.ts, e8.ts (nearestScaled, nearestDithered) and
// voronoiCode.ts (decode), step for step (E8's distance comparison in an equivalent exact form), so
// that every tie on a Voronoi boundary is broken as on the CPU (DESIGN §2, "the exactness trap").
//
// A library: no bindings, no entry points, no constants to set. Compiled before
//   - the encoder library shaders/lattice_code.wgsl (src/gpu/kernels/latticeEncode.ts), which calls
//     nearest_point with its compile-time rule and dimension, and
//   - the decoding kernels e8_matmul.wgsl, lattice_gemv.wgsl and lattice_dequantize.wgsl, which call
//     decode_leader with the lattice id and q from their uniforms.
//
// Integer ranges: the encoder's inputs are fixed-point numerators |p| ≤ 2^24 over denominators
// den < 2^29 (den < 2^24 for E8; checked on the host), the decoders' are lifted points |p| ≤ 5q over
// den = s·q ≤ 32. Every intermediate below is then an exact i32 (E8's comparison, the one that needs
// care, states its bounds).
//
// Every `var` has an explicit initializer: Dawn on lavapipe (Mesa 25) does not re-zero a `var`
// declared without one when its scope is re-entered in a loop, contrary to WGSL, and these functions
// are inlined into loops.

// A point or a numerator vector: the first `dim` entries are used, the rest are zero.
alias LatticePoint = array<i32, 8>;

// Nearest-point rules (the encoder's NEAREST_RULE).
const NEAREST_Z: u32 = 0u;  // Z^d: round every coordinate
const NEAREST_D: u32 = 1u;  // D_d (Conway–Sloane)
const NEAREST_E8: u32 = 2u; // E8, in doubled coordinates

// Lattice ids of the decoding kernels (src/gpu/latticeOperand.ts: latticeId).
const LATTICE_D3: u32 = 0u;
const LATTICE_E8: u32 = 1u;
const LATTICE_Z8: u32 = 2u;

// floor(a / b) for b > 0 (WGSL's i32 `/` truncates toward zero).
fn floor_div(a: i32, b: i32) -> i32 {
  let quotient = a / b;
  return select(quotient, quotient - 1, a - quotient * b < 0);
}

// roundRational: nearest integer to p / den, ties upward: floor((2p + den) / (2den)).
fn round_rational(p: i32, den: i32) -> i32 {
  return floor_div(2 * p + den, 2 * den);
}

// nearestDnRational: the nearest point of D_dim to p / den. Round every coordinate; on an odd sum
// re-round the coordinate with the largest error the other way. Ties between coordinates go to the
// first index; an error of exactly zero moves upward. Every error stays within den after the move.
fn nearest_dn(p: LatticePoint, den: i32, dim: u32) -> LatticePoint {
  var out = LatticePoint();
  var parity = 0;
  var worst = 0u;
  var worst_abs = -1;
  var worst_error = 0;
  for (var i = 0u; i < dim; i = i + 1u) {
    let f = round_rational(p[i], den);
    out[i] = f;
    parity = parity + f;
    let e = p[i] - den * f;
    let magnitude = abs(e);
    if (magnitude > worst_abs) {
      worst_abs = magnitude;
      worst = i;
      worst_error = e;
    }
  }
  if ((parity & 1) != 0) {
    out[worst] = out[worst] + select(1, -1, worst_error < 0);
  }
  return out;
}

// E8.nearestScaled: the nearest point of E8 to p / den (λ units), doubled. Candidates a = Q_D8(p/den)
// (returned as 2a) and b = Q_D8((2p − den)/(2den)) (returned as 2b + 1); the CPU compares
// d1 = 4·Σ e1² with d2 = Σ e2², e1 = p − den·a, e2 = 2p − den·(2b + 1), and keeps a when d1 ≤ d2.
// Here the same comparison is made exactly in i32 through
//   d2 − d1 = Σ (e2 − 2e1)(e2 + 2e1) = den · Σ (2a − 2b − 1)(2e1 + e2),
// so a wins iff balance = Σ (2a − 2b − 1)(2e1 + e2) ≥ 0 (den > 0; a tie keeps a). Bounds: |e1| ≤ den
// and |e2| ≤ 2den (nearest_dn), so |2a − 2b − 1| = |e2 − 2e1| / den ≤ 4, an odd number, hence ≤ 3,
// and |2e1 + e2| ≤ 4den: |balance| ≤ 8·3·4den = 96den < 2^31 for den < 2^24, and 2p ± den·(…) stays
// below 2^27 for |p| ≤ 2^24. The squared distances themselves (up to 32·den²) would need 64 bits.
fn nearest_e8(p: LatticePoint, den: i32) -> LatticePoint {
  return nearest_e8_ties(p, den, false);
}

// E8.nearestDithered (the universal encoder's): nearest_e8, except that an exact tie goes to the
// candidate whose error is smaller in magnitude in the first coordinate where the two errors' magnitudes
// differ (e1 doubled against e2, both in units of 1/(2den): |2e1| ≤ 2den, |e2| ≤ 2den), or, where
// they never differ (opposite errors), the candidate whose error is positive in coordinate 0: rules
// that depend on the error vector only, as the subtractive dither needs (src/lattices/lattice.ts).
fn nearest_e8_dithered(p: LatticePoint, den: i32) -> LatticePoint {
  return nearest_e8_ties(p, den, true);
}

fn nearest_e8_ties(p: LatticePoint, den: i32, error_ties: bool) -> LatticePoint {
  let a = nearest_dn(p, den, 8u);
  var shifted = LatticePoint();
  for (var i = 0u; i < 8u; i = i + 1u) {
    shifted[i] = 2 * p[i] - den;
  }
  let b = nearest_dn(shifted, 2 * den, 8u);
  var balance = 0;
  for (var i = 0u; i < 8u; i = i + 1u) {
    let e1 = p[i] - den * a[i];
    let e2 = 2 * p[i] - den * (2 * b[i] + 1);
    balance = balance + (2 * a[i] - 2 * b[i] - 1) * (2 * e1 + e2);
  }
  var use_a = balance >= 0;
  if (error_ties && balance == 0) {
    // Equal magnitudes everywhere (opposite errors, 2y ∈ E8): the error positive in coordinate 0.
    use_a = p[0] - den * a[0] > 0;
    for (var i = 0u; i < 8u; i = i + 1u) {
      let e1 = abs(2 * (p[i] - den * a[i]));
      let e2 = abs(2 * p[i] - den * (2 * b[i] + 1));
      if (e1 != e2) {
        use_a = e1 < e2;
        break;
      }
    }
  }
  var out = LatticePoint();
  for (var i = 0u; i < 8u; i = i + 1u) {
    out[i] = select(2 * b[i] + 1, 2 * a[i], use_a);
  }
  return out;
}

// Lattice.nearestDithered: the universal encoder's nearest point (nearest_point but for E8's ties).
fn nearest_point_dithered(rule: u32, p: LatticePoint, den: i32, dim: u32) -> LatticePoint {
  if (rule == NEAREST_E8) {
    return nearest_e8_dithered(p, den);
  }
  return nearest_point(rule, p, den, dim);
}

// Lattice.nearestScaled: the nearest point to p / den (λ units) under `rule`, in point coordinates
// (E8: doubled). `dim` is the dimension of Z^d and D_d (E8 is 8).
fn nearest_point(rule: u32, p: LatticePoint, den: i32, dim: u32) -> LatticePoint {
  if (rule == NEAREST_E8) {
    return nearest_e8(p, den);
  }
  if (rule == NEAREST_D) {
    return nearest_dn(p, den, dim);
  }
  var out = LatticePoint();
  for (var i = 0u; i < dim; i = i + 1u) {
    out[i] = round_rational(p[i], den);
  }
  return out;
}

// Points are held as P = pointScale · λ: 2 for E8 (half-integer points), else 1.
fn point_scale(rule: u32) -> i32 {
  return select(1, 2, rule == NEAREST_E8);
}

// The dim base-q digits of a code, least significant first.
fn code_digits(code: u32, q: u32, dim: u32) -> LatticePoint {
  var digits = LatticePoint();
  var rest = code;
  for (var i = 0u; i < dim; i = i + 1u) {
    let next = rest / q;
    digits[i] = i32(rest - next * q);
    rest = next;
  }
  return digits;
}

// VoronoiCode.decode from the lifted point λ' = basis · digits (point coordinates): the coset leader
// λ' − q·Q(λ' / (pointScale·q)).
fn coset_leader(lifted: LatticePoint, q: u32, rule: u32, dim: u32) -> LatticePoint {
  let qi = i32(q);
  let nearest = nearest_point(rule, lifted, point_scale(rule) * qi, dim);
  var leader = LatticePoint();
  for (var i = 0u; i < dim; i = i + 1u) {
    leader[i] = lifted[i] - qi * nearest[i];
  }
  return leader;
}

// D3's generator (src/lattices/d3.ts) times the digits: columns (1,−1,0), (0,1,−1), (0,1,1).
fn lift_d3(u: LatticePoint) -> LatticePoint {
  var p = LatticePoint();
  p[0] = u[0];
  p[1] = -u[0] + u[1] + u[2];
  p[2] = -u[1] + u[2];
  return p;
}

// E8's generator in doubled coordinates (src/lattices/e8.ts: 2 × the Conway–Sloane generator,
// transposed) times the digits: P[0] = 4u0 − 2u1 + u7, P[c] = 2u_c − 2u_{c+1} + u7 (c = 1…5),
// P[6] = 2u6 + u7, P[7] = u7.
fn lift_e8(u: LatticePoint) -> LatticePoint {
  var p = LatticePoint();
  p[0] = 4 * u[0] - 2 * u[1] + u[7];
  for (var c = 1u; c < 6u; c = c + 1u) {
    p[c] = 2 * u[c] - 2 * u[c + 1u] + u[7];
  }
  p[6] = 2 * u[6] + u[7];
  p[7] = u[7];
  return p;
}

// The leader of `code` for lattice `lattice_id` (LATTICE_*) with nesting ratio q, in point
// coordinates (E8: doubled); D3 fills entries 0…2. Each lattice calls coset_leader with literal rule
// and dimension, so that every loop has a constant trip count once inlined. Z^8's generator is the
// identity: its leader takes every digit u to u − q·round(u / q), in {−⌊q/2⌋, …, ⌈q/2⌉ − 1}.
fn decode_leader(lattice_id: u32, code: u32, q: u32) -> LatticePoint {
  if (lattice_id == LATTICE_D3) {
    return coset_leader(lift_d3(code_digits(code, q, 3u)), q, NEAREST_D, 3u);
  }
  if (lattice_id == LATTICE_E8) {
    return coset_leader(lift_e8(code_digits(code, q, 8u)), q, NEAREST_E8, 8u);
  }
  return coset_leader(code_digits(code, q, 8u), q, NEAREST_Z, 8u);
}
