// Charts drawn as inline SVG: bars with their exact numbers in a <title> (shown on hover, and
// read by screen readers), an axis with the largest value, and labels thinned to fit.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// A round number at or above `value`, for the top of the axis.
function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

// Dollars as people read them: cents for a dollar or more, three significant digits below
// that (one request to a cheap model costs a small fraction of a cent).
export function formatUsd(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  if (value === 0) return "$0";
  if (Math.abs(value) >= 1000) return `$${Math.round(value).toLocaleString("en-US")}`;
  if (Math.abs(value) >= 0.1) return `$${value.toFixed(2)}`;
  if (Math.abs(value) < 0.000001) return "< $0.000001";
  return `$${Number(value.toPrecision(3)).toFixed(Math.min(8, 2 - Math.floor(Math.log10(Math.abs(value)))))}`.replace(/(\.\d*?[1-9])0+$/, "$1");
}

export function formatNumber(value) {
  if (value >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return value.toLocaleString("en-US");
}

// points: [{label, value, part?, title}]; `part` (like errors) is drawn over the bottom of
// its bar in the accent colour. Returns an <svg> element.
// `width` is the width the chart will be shown at, so its text keeps its size on any screen.
// `format` writes the axis' figures (dollars, for a cost chart).
export function barChart(points, { name, partName, partClass = "part", width: shown, format = formatNumber } = {}) {
  const width = Math.max(300, Math.min(1400, Math.round(shown || 640)));
  const height = 230;
  const max = niceCeiling(Math.max(0, ...points.map((p) => p.value)));
  // Room for the widest axis figure (about 7 px a character at 12 px).
  const left = Math.max(44, 12 + 7 * Math.max(...[0, 0.5, 1].map((f) => format(max * f).length)));
  const bottom = 24;
  const top = 26;
  const plotWidth = width - left - 8;
  const plotHeight = height - top - bottom;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": name || "chart",
  });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotHeight * (1 - fraction);
    chart.append(svg("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "grid" }));
    chart.append(
      svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, format(max * fraction)),
    );
  }
  if (points.length === 0) {
    chart.append(
      svg("text", { x: left + plotWidth / 2, y: top + plotHeight / 2, class: "axis", "text-anchor": "middle" }, "no data in this range"),
    );
    return chart;
  }
  const slot = plotWidth / points.length;
  const barWidth = Math.max(2, Math.min(48, slot * 0.7));
  const every = Math.ceil(points.length / Math.max(1, Math.floor(plotWidth / 70)));
  points.forEach((point, index) => {
    const x = left + slot * index + (slot - barWidth) / 2;
    const group = svg("g", { class: "bar", tabindex: 0 });
    group.append(svg("title", {}, point.title));
    const barHeight = (point.value / max) * plotHeight;
    // An invisible full-height target, so thin or empty bars still show their numbers.
    group.append(svg("rect", { x: left + slot * index, y: top, width: slot, height: plotHeight, class: "hit" }));
    group.append(svg("rect", { x, y: top + plotHeight - barHeight, width: barWidth, height: barHeight, class: "value" }));
    if (point.part) {
      const partHeight = (point.part / max) * plotHeight;
      group.append(svg("rect", { x, y: top + plotHeight - partHeight, width: barWidth, height: partHeight, class: partClass }));
    }
    chart.append(group);
    if (index % every === 0) {
      chart.append(
        svg("text", { x: left + slot * index + slot / 2, y: height - 6, class: "axis", "text-anchor": "middle" }, point.label),
      );
    }
  });
  if (partName) {
    chart.append(svg("rect", { x: left, y: 4, width: 10, height: 10, class: "value" }));
    chart.append(svg("text", { x: left + 14, y: 13, class: "axis" }, name));
    const nameWidth = 7 * name.length + 30;
    chart.append(svg("rect", { x: left + nameWidth, y: 4, width: 10, height: 10, class: partClass }));
    chart.append(svg("text", { x: left + nameWidth + 14, y: 13, class: "axis" }, partName));
  }
  return chart;
}
