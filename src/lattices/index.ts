export type { Lattice } from './lattice.js';
export { roundHalfEven } from './lattice.js';
export { D3 } from './d3.js';
export { E8 } from './e8.js';
export { zLattice } from './zLattice.js';
export { VoronoiCode } from './voronoiCode.js';
export { innerProductTable, leaderTable, MAX_TABLE_CODES } from './innerProductTable.js';
export { roundRational, nearestDnRational } from './rationalRounding.js';
