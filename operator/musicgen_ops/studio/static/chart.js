// The loss curve: an inline SVG drawn from the training's points (no chart library).
const NS = 'http://www.w3.org/2000/svg';
const W = 600, H = 260, PAD = { left: 52, right: 14, top: 14, bottom: 32 };

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceTicks(min, max, count) {
  if (min === max) return [min];
  const step = (max - min) / (count - 1);
  return Array.from({ length: count }, (_, i) => min + i * step);
}

export function drawLossChart(svg, points) {
  svg.replaceChildren();
  const series = [
    { key: 'loss', cls: 'line-loss', label: 'train' },
    { key: 'val_loss', cls: 'line-val', label: 'validation' },
  ].map((s) => ({ ...s, data: points.filter((p) => p[s.key] !== null && p[s.key] !== undefined) }));
  const all = series.flatMap((s) => s.data.map((p) => p[s.key]));
  if (!all.length) {
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' },
      'waiting for the first loss…'));
    return;
  }
  const steps = points.map((p) => p.step);
  const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
  let y0 = Math.min(...all), y1 = Math.max(...all);
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const sx = (v) => PAD.left + ((v - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (v) => H - PAD.bottom - ((v - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  for (const t of niceTicks(y0, y1, 5)) {
    svg.append(el('line', { x1: PAD.left, x2: W - PAD.right, y1: sy(t), y2: sy(t), class: 'grid' }));
    svg.append(el('text', { x: PAD.left - 6, y: sy(t) + 4, 'text-anchor': 'end', class: 'tick' }, t.toFixed(3)));
  }
  for (const t of niceTicks(x0, x1, Math.min(6, x1 - x0 + 1))) {
    svg.append(el('text', { x: sx(t), y: H - 10, 'text-anchor': 'middle', class: 'tick' }, Math.round(t)));
  }
  svg.append(el('text', { x: PAD.left - 6, y: H - 10, 'text-anchor': 'end', class: 'tick' }, 'step'));
  series.forEach((s, index) => {
    if (!s.data.length) return;
    const d = s.data.map((p, i) => `${i ? 'L' : 'M'}${sx(p.step).toFixed(1)},${sy(p[s.key]).toFixed(1)}`).join('');
    svg.append(el('path', { d, class: s.cls, 'data-series': s.key }));
    for (const p of s.data) {
      svg.append(el('circle', { cx: sx(p.step), cy: sy(p[s.key]), r: 3, class: s.cls }));
    }
    svg.append(el('text', { x: W - PAD.right - 4, y: PAD.top + 12 + 16 * index, 'text-anchor': 'end',
      class: `legend ${s.cls}` }, s.label));
  });
}
