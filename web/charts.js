// Horizontal SVG bar charts for /api/stats columns, drawn to the container's width.

export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const fmt = (n) => Number(n).toLocaleString('en-US');

let ctx;
/** Pixel width of `text` in the chart font (falls back to an estimate without canvas). */
function textWidth(text, font) {
  if (ctx === undefined) ctx = document.createElement('canvas').getContext('2d');
  if (!ctx) return text.length * 7.5;
  ctx.font = font;
  return ctx.measureText(text).width;
}

/** Top `max` values plus an "other" bucket with the rest. */
export function topValues(values, max = 25) {
  const sorted = [...values].sort((a, b) => b.count - a.count);
  if (sorted.length <= max) return sorted.map((v) => ({ label: String(v.value), count: v.count }));
  const top = sorted.slice(0, max).map((v) => ({ label: String(v.value), count: v.count }));
  const rest = sorted.slice(max);
  top.push({ label: `other (${rest.length} values)`, count: rest.reduce((s, v) => s + v.count, 0), other: true });
  return top;
}

/**
 * @param {string} title  human name of the column
 * @param {{value:any,count:number}[]} values
 * @param {number} width  pixel width to draw at
 */
export function barChart(title, values, width) {
  const rows = topValues(values);
  const total = rows.reduce((s, r) => s + r.count, 0) || 1;
  const maxCount = Math.max(1, ...rows.map((r) => r.count));
  const rowH = 24, barH = 16, pad = 4;
  const font = `12px ${getComputedStyle(document.body).fontFamily}`;
  const countW = textWidth(fmt(maxCount), font) + 12;
  const labelW = Math.ceil(Math.min(width * 0.42, Math.max(...rows.map((r) => textWidth(r.label, font))) + 12));
  const barMax = Math.max(20, width - labelW - countW - pad);
  const fit = (label) => {
    if (textWidth(label, font) <= labelW - 10) return label;
    let n = label.length;
    while (n > 1 && textWidth(`${label.slice(0, n)}…`, font) > labelW - 10) n--;
    return `${label.slice(0, n)}…`;
  };
  const height = rows.length * rowH + pad * 2;
  const summary = rows.map((r) => `${r.label} ${fmt(r.count)}`).join('; ');

  const bars = rows.map((r, i) => {
    const y = pad + i * rowH;
    const len = Math.max(1, (r.count / maxCount) * barMax);
    const shown = fit(r.label);
    const pct = ((r.count / total) * 100).toFixed(1);
    return `<g class="row${r.other ? ' other' : ''}"><title>${esc(r.label)}: ${fmt(r.count)} (${pct}%)</title>`
      + `<text class="label" x="${labelW - 8}" y="${y + rowH / 2}" text-anchor="end" dominant-baseline="central">${esc(shown)}</text>`
      + `<rect class="bar" x="${labelW}" y="${y + (rowH - barH) / 2}" width="${len.toFixed(1)}" height="${barH}" rx="3"></rect>`
      + `<text class="count" x="${(labelW + len + 6).toFixed(1)}" y="${y + rowH / 2}" dominant-baseline="central">${fmt(r.count)}</text></g>`;
  }).join('');

  return `<svg class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" `
    + `aria-label="${esc(`${title}: ${summary}`)}">`
    + `<title>${esc(`${title}: ${summary}`)}</title>${bars}</svg>`;
}
