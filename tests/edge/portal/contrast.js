// Every text element's colour against the colour behind it, as rendered (WCAG 2 formula);
// large text (>= 24 px, or >= 18.66 px bold) needs 3:1, other text 4.5:1. Also: body text
// size, the smallest text, touch target heights and horizontal overflow.
(() => {
  const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92
    : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const rgba = s => (s.match(/[\d.]+/g) || [0, 0, 0, 0]).map(Number);
  const bgOf = el => { for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
    if (c.length < 4 || c[3] > 0.5) return c.slice(0, 3); } return [255, 255, 255]; };
  const bad = [], sizes = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const st = getComputedStyle(el), r = el.getBoundingClientRect();
    if (!own || st.visibility === "hidden" || st.display === "none" || r.width === 0) continue;
    if (el.closest("[hidden]")) continue;
    const fg = rgba(st.color).slice(0, 3), bg = bgOf(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x), ratio = (a + 0.05) / (b + 0.05);
    const px = parseFloat(st.fontSize), bold = parseInt(st.fontWeight) >= 700;
    const need = px >= 24 || (px >= 18.66 && bold) ? 3 : 4.5;
    sizes.push(px);
    if (ratio < need) bad.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 20)}" ${ratio.toFixed(2)} < ${need}`);
  }
  const body = parseFloat(getComputedStyle(document.body).fontSize);
  const targets = [...document.querySelectorAll("main button, main .btn, .tabbar a, main input, main select")]
    .filter(e => e.getBoundingClientRect().width > 0 && e.type !== "hidden" && e.type !== "checkbox")
    .map(e => Math.round(e.getBoundingClientRect().height));
  return {bad, body, minText: Math.min(...sizes), targets,
          overflow: document.documentElement.scrollWidth - innerWidth};
})
