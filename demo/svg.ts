/** Small helpers to build SVG by hand (the page uses no chart library). */

const SVG_NS = 'http://www.w3.org/2000/svg';

type Attributes = Readonly<Record<string, string | number>>;

/** An SVG element with attributes and children. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Array<Node | string>
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child);
  return element;
}

/** A root `<svg>` that scales to its container, with an accessible name and description. */
export function svgRoot(width: number, height: number, title: string, description: string): SVGSVGElement {
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img' });
  root.append(svg('title', {}, title), svg('desc', {}, description));
  return root;
}

/**
 * The width in user units to draw a plot at: the container's own width in CSS pixels, within
 * [narrowest, widest]. Drawn 1:1, the plot's 11–12 px labels stay that size: a 640-unit plot shrunk to
 * a phone's 324 px had labels 6 px tall. (A hidden container, width 0, gets `widest`.)
 */
export function drawingWidth(container: HTMLElement, narrowest: number, widest: number): number {
  const width = Math.round(container.clientWidth);
  return width === 0 ? widest : Math.max(narrowest, Math.min(widest, width));
}

/** Rounds a coordinate to 0.1 px so the markup stays short. */
export function px(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}
