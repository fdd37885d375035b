// Integer decoders of the Voronoi codes of D3, E8 and Z^8: the WGSL twin of VoronoiCode.decode
// (src/lattices/voronoiCode.ts) with the nearest-point rules of src/lattices/rationalRounding.ts,
// d3.ts, e8.ts and zLattice.ts. A library: no bindings, no entry points; kernels that decode codes are
// compiled as this source followed by their own.
//
// decode(code) = P' − q·Q(P' / (pointScale·q)) with P' = basis · digits(code): the coset leader in
// point coordinates (D3 and Z^8: the lattice point itself; E8: the point doubled, so all integers).
// Every step is i32 arithmetic on small integers (|P'| ≤ 5q, squared errors < 2^16 for q ≤ 16), so
// it decides exactly what the CPU decides, ties included (DESIGN §2, "the exactness trap").

const LATTICE_D3: u32 = 0u;
const LATTICE_E8: u32 = 1u;
const LATTICE_Z8: u32 = 2u;

// floor(a / b) for b > 0 (WGSL's `/` truncates toward zero).
fn floor_div(a: i32, b: i32) -> i32 {
  let quotient = a / b;
  return select(quotient, quotient - 1, a % b != 0 && a < 0);
}

// Nearest integer to p / den, ties upward: floor((2p + den) / (2den)) (roundRational).
fn round_rational(p: i32, den: i32) -> i32 {
  return floor_div(2 * p + den, 2 * den);
}

// Conway–Sloane nearest point of D_dim to p / den (nearestDnRational): round every coordinate; if the
// sum is odd, move the coordinate with the largest rounding error the other way. Ties between
// coordinates go to the first index; an error of exactly zero moves upward.
fn nearest_dn(p: array<i32, 8>, den: i32, dim: u32) -> array<i32, 8> {
  var out: array<i32, 8>;
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

// The d base-q digits of a code, least significant first.
fn code_digits(code: u32, q: u32, dim: u32) -> array<i32, 8> {
  var digits: array<i32, 8>;
  var rest = code;
  for (var i = 0u; i < dim; i = i + 1u) {
    digits[i] = i32(rest % q);
    rest = rest / q;
  }
  return digits;
}

// D3 (pointScale 1): basis columns (1,−1,0), (0,1,−1), (0,1,1).
fn decode_d3(code: u32, q: u32) -> vec3<i32> {
  let u = code_digits(code, q, 3u);
  var p: array<i32, 8>;
  p[0] = u[0];
  p[1] = -u[0] + u[1] + u[2];
  p[2] = -u[1] + u[2];
  let qi = i32(q);
  let nearest = nearest_dn(p, qi, 3u);
  return vec3<i32>(p[0] - qi * nearest[0], p[1] - qi * nearest[1], p[2] - qi * nearest[2]);
}

// E8 (pointScale 2, doubled coordinates): basis = 2 × the Conway–Sloane generator, transposed, so
// P'[0] = 4u0 − 2u1 + u7, P'[c] = 2u_c − 2u_{c+1} + u7 (c = 1…5), P'[6] = 2u6 + u7, P'[7] = u7.
// Nearest point of E8 to P'/den (den = 2q, λ units) in doubled coordinates: the closer of 2·Q_D8(P'/den)
// and 2·Q_D8((2P' − den)/(2den)) + 1, distances compared in units of 1/(2den); a tie keeps the D8 one.
fn decode_e8(code: u32, q: u32) -> array<i32, 8> {
  let u = code_digits(code, q, 8u);
  var p: array<i32, 8>;
  p[0] = 4 * u[0] - 2 * u[1] + u[7];
  for (var c = 1u; c < 6u; c = c + 1u) {
    p[c] = 2 * u[c] - 2 * u[c + 1u] + u[7];
  }
  p[6] = 2 * u[6] + u[7];
  p[7] = u[7];
  let qi = i32(q);
  let den = 2 * qi;
  let a = nearest_dn(p, den, 8u);
  var shifted: array<i32, 8>;
  for (var i = 0u; i < 8u; i = i + 1u) {
    shifted[i] = 2 * p[i] - den;
  }
  let b = nearest_dn(shifted, 2 * den, 8u);
  var d1 = 0;
  var d2 = 0;
  for (var i = 0u; i < 8u; i = i + 1u) {
    let e1 = p[i] - den * a[i];
    d1 = d1 + e1 * e1;
    let e2 = 2 * p[i] - den * (2 * b[i] + 1);
    d2 = d2 + e2 * e2;
  }
  let use_d8 = 4 * d1 <= d2;
  var leader: array<i32, 8>;
  for (var i = 0u; i < 8u; i = i + 1u) {
    let nearest = select(2 * b[i] + 1, 2 * a[i], use_d8);
    leader[i] = p[i] - qi * nearest;
  }
  return leader;
}

// Z^8 (pointScale 1): each digit u becomes u − q·round(u / q), i.e. the grid {−⌊q/2⌋, …, ⌈q/2⌉ − 1}.
fn decode_z8(code: u32, q: u32) -> array<i32, 8> {
  let u = code_digits(code, q, 8u);
  let qi = i32(q);
  var leader: array<i32, 8>;
  for (var i = 0u; i < 8u; i = i + 1u) {
    leader[i] = u[i] - qi * round_rational(u[i], qi);
  }
  return leader;
}

// The leader of `code` for lattice `lattice` (LATTICE_*), in point coordinates; D3 fills entries 0…2.
fn decode_leader(lattice: u32, code: u32, q: u32) -> array<i32, 8> {
  if (lattice == LATTICE_D3) {
    let v = decode_d3(code, q);
    var leader: array<i32, 8>;
    leader[0] = v.x;
    leader[1] = v.y;
    leader[2] = v.z;
    return leader;
  }
  if (lattice == LATTICE_E8) {
    return decode_e8(code, q);
  }
  return decode_z8(code, q);
}
