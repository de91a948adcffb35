// Crop box over the shown photo. The box is kept in fractions (0..1) of the
// displayed image so it survives resizes; toPixels() converts it to pixels of
// the original image (naturalWidth/Height) for the API.

const MIN = 0.06; // smallest box side, as a fraction of the image
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

export class CropBox {
  /**
   * @param {HTMLElement} frame  positioned wrapper exactly the size of the image
   * @param {HTMLElement} box    the crop box (with .handle children carrying data-h="nw|ne|sw|se")
   * @param {HTMLElement} shade  element drawn at the same rect inside a clipping layer (dims the outside)
   * @param {(rect) => void} onCommit called ~300 ms after the user stops changing the box
   */
  constructor(frame, box, shade, onCommit) {
    this.frame = frame;
    this.box = box;
    this.shade = shade;
    this.onCommit = onCommit;
    this.timer = 0;
    this.drag = null;
    this.reset(false);
    box.addEventListener('pointerdown', (e) => this.down(e));
    box.addEventListener('pointermove', (e) => this.move(e));
    box.addEventListener('pointerup', (e) => this.up(e));
    box.addEventListener('pointercancel', (e) => this.up(e));
    box.addEventListener('keydown', (e) => this.key(e));
  }

  reset(commit = true) {
    this.r = { x: 0, y: 0, w: 1, h: 1 };
    this.render();
    if (commit) this.schedule(0);
  }

  /** Show a box given in original-image pixels (the garment the server searched by), without searching again. */
  showPixels(px, naturalW, naturalH) {
    if (!px || !naturalW || !naturalH) return;
    const x = clamp(px.x / naturalW, 0, 1), y = clamp(px.y / naturalH, 0, 1);
    this.r = { x, y, w: clamp(px.w / naturalW, MIN, 1 - x), h: clamp(px.h / naturalH, MIN, 1 - y) };
    this.render();
  }

  isFull() {
    const { x, y, w, h } = this.r;
    return x <= 0.001 && y <= 0.001 && w >= 0.999 && h >= 0.999;
  }

  /** Crop in original-image pixels, or null when the box covers the whole image. */
  toPixels(naturalW, naturalH) {
    if (this.isFull() || !naturalW || !naturalH) return null;
    const x = clamp(Math.round(this.r.x * naturalW), 0, naturalW - 1);
    const y = clamp(Math.round(this.r.y * naturalH), 0, naturalH - 1);
    const w = clamp(Math.round(this.r.w * naturalW), 1, naturalW - x);
    const h = clamp(Math.round(this.r.h * naturalH), 1, naturalH - y);
    return { x, y, w, h };
  }

  render() {
    const { x, y, w, h } = this.r;
    for (const el of [this.box, this.shade]) {
      const s = el.style;
      s.left = `${x * 100}%`;
      s.top = `${y * 100}%`;
      s.width = `${w * 100}%`;
      s.height = `${h * 100}%`;
    }
    this.box.setAttribute('aria-valuetext',
      `covers ${Math.round(w * 100)}% by ${Math.round(h * 100)}% of the photo, starting ${Math.round(x * 100)}% from the left and ${Math.round(y * 100)}% from the top`);
  }

  schedule(ms = 300) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onCommit(this.r), ms);
  }

  down(e) {
    if (e.button !== undefined && e.button !== 0) return;
    e.preventDefault();
    clearTimeout(this.timer);
    const handle = e.target.closest('[data-h]');
    const fr = this.frame.getBoundingClientRect();
    this.drag = { mode: handle ? handle.dataset.h : 'move', px: e.clientX, py: e.clientY, fw: fr.width, fh: fr.height, start: { ...this.r } };
    this.box.setPointerCapture(e.pointerId);
    this.box.classList.add('dragging');
  }

  move(e) {
    const d = this.drag;
    if (!d) return;
    const dx = (e.clientX - d.px) / d.fw;
    const dy = (e.clientY - d.py) / d.fh;
    this.r = this.apply(d.mode, d.start, dx, dy);
    this.render();
  }

  up(e) {
    if (!this.drag) return;
    const moved = JSON.stringify(this.r) !== JSON.stringify(this.drag.start);
    this.drag = null;
    this.box.classList.remove('dragging');
    if (this.box.hasPointerCapture(e.pointerId)) this.box.releasePointerCapture(e.pointerId);
    if (moved) this.schedule();
  }

  /** New rect after moving by (dx, dy) in mode: "move" or a corner "nw|ne|sw|se". */
  apply(mode, s, dx, dy) {
    if (mode === 'move') {
      return { x: clamp(s.x + dx, 0, 1 - s.w), y: clamp(s.y + dy, 0, 1 - s.h), w: s.w, h: s.h };
    }
    let left = s.x, top = s.y, right = s.x + s.w, bottom = s.y + s.h;
    if (mode.includes('w')) left = clamp(left + dx, 0, right - MIN);
    if (mode.includes('e')) right = clamp(right + dx, left + MIN, 1);
    if (mode.includes('n')) top = clamp(top + dy, 0, bottom - MIN);
    if (mode.includes('s')) bottom = clamp(bottom + dy, top + MIN, 1);
    return { x: left, y: top, w: right - left, h: bottom - top };
  }

  key(e) {
    const dirs = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const d = dirs[e.key];
    if (!d) return;
    e.preventDefault();
    const step = e.altKey ? 0.005 : 0.02;
    const [dx, dy] = [d[0] * step, d[1] * step];
    // Shift+arrows resize from the bottom-right corner (Left/Up shrink, Right/Down grow).
    this.r = this.apply(e.shiftKey ? 'se' : 'move', this.r, dx, dy);
    this.render();
    this.schedule();
  }
}
