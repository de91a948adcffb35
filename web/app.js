// Lookalike front end: hash-routed single page (#/search, #/browse, #/stats, #/item/{id}).
import * as api from './api.js';
import { CropBox } from './crop.js';
import { barChart, esc } from './charts.js';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

const state = {
  file: null,          // the uploaded File
  url: null,           // its object URL
  natural: { w: 0, h: 0 },
  mode: null,          // 'photo' | 'url' | 'similar' | null
  queryUrl: '',        // the photo's web address, in 'url' mode
  queryVector: null,   // the last photo query's vector (refining needs no re-upload)
  located: false,      // the crop box shows the garment the server found, unmoved: searching
                       // again sends no crop, so the server locates it as the first time
  look: null,          // { res, garments, vectors } when the photo has 2 or more garments
  lookPick: 0,         // the garment shown; kept while the same photo is searched again
  inflight: null,      // 'look' | 'crop' while such a photo search is on its way
  liked: new Set(),    // ids given a thumbs up
  unliked: new Set(),  // ids given a thumbs down
  similarTo: null,     // item the similar search is based on
  filters: {},         // column -> value ('' = any)
  k: 5,
  colour: '',          // '' = the index's own colour weight
  trained: '',         // '' = the index's default (its trained projection, if any)
  page: 1,
  perPage: 24,
  browseKey: '',
  items: new Map(),    // id -> last seen item object
  statsData: null,
  ctl: {},             // AbortControllers per task
  view: 'search',
};

/* ---------- helpers ---------- */

export function humanize(col) {
  const s = String(col).replace(/_/g, ' ').replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}
const nameOf = (item) => (item.metadata && item.metadata.productDisplayName) || item.id;
const colourOf = (md) => md.baseColour ?? md.colour ?? md.color ?? '';
const pct = (score) => `${Math.round(Math.max(0, Math.min(1, Number(score) || 0)) * 100)}%`;

function setStatus(msg, kind = 'info') {
  const el = $('#status');
  el.className = `status ${msg ? kind : ''}`;
  el.textContent = msg || '';
}

/** Abort the previous request of this task and get a fresh signal. */
function fresh(task) {
  if (state.ctl[task]) state.ctl[task].abort();
  state.ctl[task] = new AbortController();
  return state.ctl[task].signal;
}

function busy(on) {
  $('#spinner').hidden = !on;
  $('#results').setAttribute('aria-busy', String(on));
}

function voteHTML(item) {
  const id = esc(item.id);
  const name = esc(nameOf(item));
  return `<span class="vote">
    <button type="button" class="btn small vote-up" data-vote="up" data-id="${id}" aria-pressed="${state.liked.has(String(item.id))}" aria-label="Like ${name}" title="Like: show more like this"><svg width="18" height="18" viewBox="0 0 24 24" aria-hidden="true"><path d="M12 20.5S4.5 15.8 3 11a4.6 4.6 0 0 1 9-2.2A4.6 4.6 0 0 1 21 11c-1.5 4.8-9 9.5-9 9.5z" fill="currentColor"/></svg></button>
    <button type="button" class="btn small vote-down" data-vote="down" data-id="${id}" aria-pressed="${state.unliked.has(String(item.id))}" aria-label="Dislike ${name}" title="Dislike: show fewer like this"><svg width="18" height="18" viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="8" fill="none" stroke="currentColor" stroke-width="2.4"/><path d="M6.5 17.5l11-11" stroke="currentColor" stroke-width="2.4"/></svg></button>
  </span>`;
}

function cardHTML(item, { score = true, lazy = false, vote = false } = {}) {
  state.items.set(String(item.id), item);
  const md = item.metadata || {};
  const bits = [md.articleType, colourOf(md)].filter((v) => v !== undefined && v !== null && v !== '');
  const id = esc(item.id);
  return `<li class="card" data-id="${id}">
  <a class="card-link" href="#/item/${encodeURIComponent(item.id)}">
    <span class="thumb"><img src="${esc(item.thumbnail || `/thumbs/${item.id}`)}" alt=""${lazy ? ' loading="lazy"' : ''}></span>
    <span class="name">${esc(nameOf(item))}</span>
  </a>
  ${score && item.score !== undefined ? `<span class="score" title="Similarity">${pct(item.score)}<span class="sr-only"> similar</span></span>` : ''}
  <span class="meta">${bits.map(esc).join(' · ') || '&nbsp;'}</span>
  <button type="button" class="btn small more" data-id="${id}" aria-label="More like ${esc(nameOf(item))}">More like this</button>
  ${vote ? voteHTML(item) : ''}
</li>`;
}

function renderGrid(ul, list, opts) {
  ul.innerHTML = list.map((it) => cardHTML(it, opts)).join('');
  ul.dataset.seq = String(Number(ul.dataset.seq || 0) + 1);
}

/* ---------- upload & search ---------- */

let crop;

function loadFile(file) {
  if (!file) return;
  if (state.view !== 'search') location.hash = '#/search';
  if (file.type && !file.type.startsWith('image/')) {
    setStatus(`“${file.name}” is not an image. Please choose a photo (JPEG, PNG or WebP).`, 'error');
    return;
  }
  const url = URL.createObjectURL(file);
  const img = $('#preview-img');
  img.onload = async () => {
    if (state.url) URL.revokeObjectURL(state.url);
    state.url = url;
    const up = await prepareUpload(file, img);
    state.file = up.file;
    state.natural = { w: up.w, h: up.h };
    $('#preview').hidden = false;
    $('#dz-empty').hidden = true;
    $('#crop-reset').hidden = false;
    $('#crop-hint').hidden = false;
    $('#dropzone').classList.add('has-image');
    crop.reset(false);
    state.located = false;
    forgetLook();
    state.mode = 'photo';
    state.similarTo = null;
    clearVotes();
    runSearch();
  };
  img.onerror = () => {
    URL.revokeObjectURL(url);
    if (state.url) img.src = state.url; // keep showing the previous photo
    setStatus(`“${file.name || 'That file'}” could not be read as an image. Please choose a JPEG, PNG or WebP photo.`, 'error');
  };
  img.src = url;
}

const MAX_SIDE = 2048;
/**
 * Big photos (phone cameras) are scaled down to MAX_SIDE px and re-encoded as JPEG before
 * upload: faster on mobile networks, avoids HTTP 413, and bakes in the EXIF rotation the
 * browser shows, so crop pixels match what the server decodes. Others are sent unchanged.
 */
async function prepareUpload(file, img) {
  const w = img.naturalWidth, h = img.naturalHeight;
  const scale = Math.min(1, MAX_SIDE / Math.max(w, h));
  if (scale === 1 && file.size <= 4e6) return { file, w, h };
  try {
    const c = document.createElement('canvas');
    c.width = Math.max(1, Math.round(w * scale));
    c.height = Math.max(1, Math.round(h * scale));
    c.getContext('2d').drawImage(img, 0, 0, c.width, c.height);
    const blob = await new Promise((res) => c.toBlob(res, 'image/jpeg', 0.9));
    if (!blob) throw new Error('toBlob failed');
    const name = (file.name || 'photo').replace(/\.\w+$/, '') + '.jpg';
    return { file: new File([blob], name, { type: 'image/jpeg' }), w: c.width, h: c.height };
  } catch {
    return { file, w, h };
  }
}

function clearVotes() {
  state.liked.clear();
  state.unliked.clear();
  state.queryVector = null;
}

/** The search as it stands: the query, refined by the thumbs given so far. */
async function runSearch() {
  if (!state.mode) return;
  const signal = fresh('search');
  busy(true);
  const refining = state.liked.size + state.unliked.size > 0;
  setStatus(refining ? 'Refining…' : state.mode === 'similar' ? 'Finding similar products…' : 'Searching for lookalikes…');
  let asked = 'similar'; // 'look': every garment of the photo; 'refine' keeps the look it refines
  state.inflight = null;
  try {
    let res;
    const opts = { k: state.k, filters: state.filters, colour: state.colour, trained: state.trained };
    if (refining && (state.mode === 'similar' || state.queryVector)) {
      asked = 'refine';
      const like = [...state.liked];
      if (state.mode === 'similar') like.push(state.similarTo.id);
      let likeVectors = state.mode === 'similar' ? [] : [state.queryVector];
      if (state.look && state.mode !== 'similar') likeVectors = [await garmentVector(opts, signal)];
      res = await api.recommend({ like, unlike: [...state.unliked], likeVectors, ...opts }, signal);
    } else if (state.mode === 'photo') {
      const c = state.located ? null : crop.toPixels(state.natural.w, state.natural.h);
      asked = c ? 'crop' : 'look';
      state.inflight = asked;
      res = await api.searchImage(state.file, { ...opts, crop: c, allGarments: !c }, signal);
      $('#results').dataset.crop = c ? `${c.x},${c.y},${c.w},${c.h}` : '';
    } else if (state.mode === 'url') {
      asked = 'look';
      state.inflight = asked;
      res = await api.searchUrl(state.queryUrl, { ...opts, allGarments: true }, signal);
    } else {
      res = await api.similar(state.similarTo.id, state.k, state.filters, signal, state.colour, state.trained);
    }
    if (asked === 'look') setLook(res);
    else if (asked !== 'refine') state.look = null;
    if (res.vector) state.queryVector = res.vector;
    $('#results').dataset.allGarments = String(asked === 'look');
    $('#results').dataset.filters = new URLSearchParams(state.filters).toString();
    $('#results').dataset.colour = state.colour;
    $('#results').dataset.trained = state.trained;
    $('#results').dataset.liked = [...state.liked].join(',');
    $('#results').dataset.unliked = [...state.unliked].join(',');
    showResults(res);
  } catch (e) {
    if (e.name === 'AbortError') return;
    setStatus(e.message, 'error');
  } finally {
    if (!signal.aborted) { busy(false); state.inflight = null; }
  }
}

/* ---------- shop the look: every garment of the photo ---------- */

/** Keep the answer's garments when there are 2 or more; with fewer the page is the single-garment one. */
function setLook(res) {
  const garments = Array.isArray(res.garments) ? res.garments : [];
  state.look = garments.length >= 2 ? { res, garments, vectors: [] } : null;
  if (!state.look || state.lookPick >= garments.length) state.lookPick = 0;
}

/** A new photo: its garments are not known yet, and the largest is shown first. */
function forgetLook() {
  state.look = null;
  state.lookPick = 0;
  renderLook();
}

/** "top", or "top 2" for the second top of the photo. */
function lookLabel(i) {
  const { garments } = state.look;
  const kind = garments[i].kind;
  const same = garments.filter((g) => g.kind === kind).length;
  const nth = garments.slice(0, i + 1).filter((g) => g.kind === kind).length;
  return same > 1 ? `${kind} ${nth}` : String(kind);
}

/**
 * The answer carries only the whole photo's vector; refining one garment's results needs
 * that garment's own, so it is asked for once, by a search of the square it was searched by.
 */
async function garmentVector(opts, signal) {
  const look = state.look;
  const i = state.lookPick;
  if (!look.vectors[i]) {
    const g = look.garments[i];
    const o = { ...opts, crop: g.searched_box || g.box };
    const r = state.mode === 'url' ? await api.searchUrl(state.queryUrl, o, signal) : await api.searchImage(state.file, o, signal);
    look.vectors[i] = r.vector || state.queryVector;
  }
  return look.vectors[i];
}

let lookShown = null; // the look the chips were drawn for: choosing one must not redraw them (focus stays)
function renderLook() {
  const look = state.mode === 'photo' || state.mode === 'url' ? state.look : null;
  const row = $('#look-chips'), boxes = $('#look-boxes');
  if (look !== lookShown) {
    lookShown = look;
    $('#crop-frame').classList.remove('cropping');
    const chip = (i, cls, extra = '') => {
      const g = look.garments[i];
      return `<button type="button" class="garment-chip ${cls}" data-index="${i}" data-kind="${esc(g.kind)}" aria-pressed="false"${extra}
        title="${esc(`Found with ${Math.round(100 * (Number(g.confidence) || 0))}% confidence`)}">`;
    };
    row.innerHTML = look ? look.garments.map((g, i) => `${chip(i, 'btn small')}${esc(lookLabel(i))}</button>`).join('') : '';
    // Outlines on the photo (mouse and touch; the row above the results is the keyboard's way).
    // A web address's photo is not the one shown there.
    const onPhoto = look && state.mode === 'photo' && state.natural.w && state.natural.h;
    boxes.innerHTML = onPhoto ? look.garments.map((g, i) => {
      const b = g.box, W = state.natural.w, H = state.natural.h;
      const style = `left:${(100 * b.x) / W}%;top:${(100 * b.y) / H}%;width:${(100 * b.w) / W}%;height:${(100 * b.h) / H}%`;
      return `${chip(i, 'garment-box', ` tabindex="-1" style="${style}"`)}<span class="garment-tag">${esc(lookLabel(i))}</span></button>`;
    }).join('') : '';
    $('#look').hidden = !look;
    boxes.hidden = !onPhoto;
  }
  for (const b of $$('.garment-chip')) b.setAttribute('aria-pressed', String(Number(b.dataset.index) === state.lookPick));
  const r = $('#results');
  if (look) {
    r.dataset.lookKind = look.garments[state.lookPick].kind;
    r.dataset.lookIndex = String(state.lookPick);
  } else {
    delete r.dataset.lookKind;
    delete r.dataset.lookIndex;
  }
}

/** Show another garment of the photo: its results came with the answer, so no new request. */
function pickGarment(i) {
  if (!state.look || !state.look.garments[i]) return;
  state.lookPick = i;
  $('#crop-frame').classList.remove('cropping');
  // A search for the whole look (new filters, say) is under way: it will show this garment.
  if (state.inflight === 'look') { renderLook(); return; }
  // Thumbs up/down refined the garment shown before, not this one.
  fresh('search');
  busy(false);
  state.inflight = null;
  state.liked.clear();
  state.unliked.clear();
  $('#results').dataset.liked = '';
  $('#results').dataset.unliked = '';
  showResults(state.look.res);
}

function searchByUrl(url) {
  const u = String(url || '').trim();
  if (!/^https?:\/\//i.test(u)) {
    setStatus('Please paste a web address starting with http:// or https://', 'error');
    return;
  }
  if (state.view !== 'search') location.hash = '#/search';
  state.mode = 'url';
  state.queryUrl = u;
  state.similarTo = null;
  forgetLook();
  clearVotes();
  runSearch();
}

function vote(id, up) {
  const key = String(id);
  const [mine, other] = up ? [state.liked, state.unliked] : [state.unliked, state.liked];
  if (mine.has(key)) mine.delete(key); else { mine.add(key); other.delete(key); }
  runSearch();
}

function renderRefine() {
  const n = state.liked.size, m = state.unliked.size;
  $('#refine').hidden = n + m === 0;
  $('#refine-text').textContent = n + m === 0 ? '' : `Refined by your choices: ${n} liked, ${m} not.`;
}

/** "Looks like: Casual Shoes, 92% · Black, 71%" from the server's predictions. */
function renderLooksLike(predicted) {
  const el = $('#looks-like');
  const parts = (predicted || []).filter((p) => p && p.value);
  el.hidden = parts.length === 0;
  el.innerHTML = parts.length
    ? 'Looks like: ' + parts.map((p) => `<strong>${esc(p.value)}</strong>, ${Math.round(100 * p.probability)}%`).join(' · ')
    : '';
}

function showResults(res) {
  renderLook();
  // With several garments the answer's own results are the whole photo's: the chosen
  // garment's are shown instead (a refined answer is already that garment's).
  const pick = state.look && res.garments ? state.look.garments[state.lookPick] : null;
  const shown = pick || res;
  const list = shown.results || [];
  renderLooksLike(shown.predicted);
  // The garment the server found in a snapshot becomes the crop box, so the shopper
  // sees what was searched and can move it.
  const g = pick ? pick.searched_box || pick.box : res.garment_box;
  if (state.mode === 'photo' && g && (pick || crop.isFull())) {
    crop.showPixels(g, state.natural.w, state.natural.h);
    state.located = true;
    $('#results').dataset.garment = `${g.x},${g.y},${g.w},${g.h}`;
  } else {
    delete $('#results').dataset.garment;
  }
  $('#no-match').hidden = !shown.no_close_match;
  renderRefine();
  renderGrid($('#results'), list, { score: true, vote: true });
  $('#results-empty').hidden = list.length > 0;
  $('#took').textContent = typeof res.took_ms === 'number' ? `${res.took_ms.toFixed(res.took_ms < 10 ? 1 : 0)} ms` : '';
  renderBasedOn();
  if (!list.length) {
    $('#results-empty').innerHTML = '<p>No matching products found. Try removing a filter or making the crop box bigger.</p>';
    setStatus('Nothing found. Try removing a filter or widening the crop.', 'warn');
  } else {
    const what = state.mode === 'similar' ? `similar to ${nameOf(state.similarTo)}`
      : state.look ? `that look like the ${lookLabel(state.lookPick)} in your photo` : 'that look like your photo';
    if (shown.no_close_match) setStatus(`No close match; showing the ${list.length} nearest product${list.length === 1 ? '' : 's'}.`, 'warn');
    else setStatus(`Found ${list.length} product${list.length === 1 ? '' : 's'} ${what}.`, 'ok');
  }
}

function renderBasedOn() {
  const box = $('#based-on');
  const it = state.similarTo;
  $('#results-title').textContent = state.mode === 'similar' ? 'More like this' : 'Results';
  if (state.mode === 'url') {
    box.hidden = false;
    box.innerHTML = `<img src="${esc(state.queryUrl)}" alt="" referrerpolicy="no-referrer">
  <p>Based on the photo at <a href="${esc(state.queryUrl)}" rel="noopener noreferrer" target="_blank">${esc(state.queryUrl.replace(/^https?:\/\//i, '').slice(0, 60))}</a></p>`;
    return;
  }
  if (state.mode !== 'similar' || !it) { box.hidden = true; box.innerHTML = ''; return; }
  box.hidden = false;
  box.innerHTML = `<img src="${esc(it.thumbnail || `/thumbs/${it.id}`)}" alt="">
  <p>Based on <a href="#/item/${encodeURIComponent(it.id)}">${esc(nameOf(it))}</a></p>
  ${state.file ? '<button type="button" class="btn small" id="back-to-photo">Back to my photo</button>' : ''}`;
}

async function moreLike(id) {
  let item = state.items.get(String(id));
  if (!item) {
    try { item = await api.getItem(id); } catch (e) { setStatus(e.message, 'error'); return; }
  }
  state.mode = 'similar';
  state.similarTo = item;
  state.look = null; // "Back to my photo" asks again, for the garment chosen (lookPick)
  clearVotes();
  if (state.view !== 'search') location.hash = '#/search';
  runSearch();
  $('#results-title').scrollIntoView({ block: 'nearest' });
}

/* ---------- filters ---------- */

async function loadFacets() {
  try {
    const { columns = [] } = await api.getFacets();
    const fields = $('#filter-fields');
    fields.innerHTML = columns.map((c) => {
      const id = `f-${String(c.name).replace(/[^\w-]/g, '_')}`;
      const opts = c.values.map((v) => `<option value="${esc(v.value)}">${esc(v.value)} (${Number(v.count).toLocaleString('en-US')})</option>`).join('');
      return `<div class="field"><label for="${id}">${esc(humanize(c.name))}</label>
        <select id="${id}" name="${esc(c.name)}"><option value="">Any</option>${opts}</select></div>`;
    }).join('');
    $('#filters').hidden = columns.length === 0;
  } catch (e) {
    $('#filters').hidden = true;
    setStatus(`Filters are unavailable: ${e.message}`, 'error');
  }
}

function filtersChanged() {
  state.filters = {};
  for (const sel of $$('#filter-fields select')) if (sel.value !== '') state.filters[sel.name] = sel.value;
  $('#filters-clear').hidden = Object.keys(state.filters).length === 0;
  if (currentView() === 'browse') { state.page = 1; loadBrowse(); } else runSearch();
}

/* ---------- browse ---------- */

async function loadBrowse(force = false) {
  const key = JSON.stringify([state.filters, state.page, state.perPage]);
  if (!force && key === state.browseKey) return;
  state.browseKey = key;
  const signal = fresh('browse');
  const grid = $('#browse-grid');
  grid.setAttribute('aria-busy', 'true');
  $('#page-info').textContent = 'Loading…';
  try {
    const res = await api.listItems(state.page, state.perPage, state.filters, signal);
    const pages = Math.max(1, Math.ceil((res.total || 0) / (res.per_page || state.perPage)));
    renderGrid(grid, res.items || [], { score: false, lazy: true });
    $('#page-info').textContent = res.total
      ? `Page ${res.page} of ${pages} · ${Number(res.total).toLocaleString('en-US')} items`
      : 'No items match these filters.';
    $('#prev').disabled = res.page <= 1;
    $('#next').disabled = res.page >= pages;
    setStatus('');
  } catch (e) {
    if (e.name === 'AbortError') return;
    state.browseKey = '';
    $('#page-info').textContent = '';
    setStatus(e.message, 'error');
  } finally {
    if (!signal.aborted) grid.setAttribute('aria-busy', 'false');
  }
}

/* ---------- statistics ---------- */

async function loadStats() {
  if (!state.statsData) {
    $('#charts').innerHTML = '<p class="muted">Loading…</p>';
    try { state.statsData = await api.getStats(); } catch (e) {
      $('#charts').innerHTML = '';
      setStatus(e.message, 'error');
      return;
    }
  }
  const s = state.statsData;
  const cards = [['Products', Number(s.count).toLocaleString('en-US')], ['Model', s.model], ['Embedding size', s.dimension]]
    .filter(([, v]) => v !== undefined && v !== null);
  $('#stats-summary').innerHTML = cards.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('');
  drawCharts();
}

let chartWidth = 0;
function drawCharts() {
  const s = state.statsData;
  const host = $('#charts');
  if (!s || $('#view-stats').hidden) return;
  host.innerHTML = '';
  const hostW = host.clientWidth;
  chartWidth = hostW;
  const cols = hostW >= 880 ? 2 : 1;
  const width = Math.max(220, Math.floor((hostW - 16 * (cols - 1)) / cols) - 34); // card padding + border
  host.style.columnCount = cols;
  host.innerHTML = (s.columns || []).map((c) => {
    // `distinct` counts every value; `values` lists only the most frequent ones.
    const n = c.distinct ?? c.values.length;
    const head = `<figcaption><h2>${esc(humanize(c.name))}</h2><span class="muted">${n} value${n === 1 ? '' : 's'}</span></figcaption>`;
    // identifier-like columns (every value unique) make no useful chart
    if (n > 25 && c.values.every((v) => v.count <= 1)) {
      return `<figure class="chart-card">${head}<p class="muted">Nearly every item has its own value; not charted.</p></figure>`;
    }
    return `<figure class="chart-card">${head}${barChart(humanize(c.name), c.values, width)}</figure>`;
  }).join('') || '<p class="muted">No columns to chart.</p>';
}

/* ---------- product view ---------- */

async function loadItem(id) {
  const signal = fresh('item');
  const detail = $('#item-detail');
  detail.innerHTML = '<p class="muted">Loading…</p>';
  $('#item-similar').innerHTML = '';
  try {
    const [item, sim] = await Promise.all([
      api.getItem(id, signal),
      api.similar(id, 10, {}, signal).catch((e) => (e.name === 'AbortError' ? Promise.reject(e) : { results: [], error: e })),
    ]);
    state.items.set(String(item.id), item);
    const md = item.metadata || {};
    const rows = Object.entries({ id: item.id, ...md })
      .map(([k, v]) => `<div><dt>${esc(humanize(k))}</dt><dd>${esc(v ?? '')}</dd></div>`).join('');
    detail.innerHTML = `<div class="item-photo"><img src="${esc(item.image || `/images/${item.id}`)}" alt="${esc(nameOf(item))}"></div>
    <div class="item-info"><h1 id="h-item" tabindex="-1">${esc(nameOf(item))}</h1>
      <dl class="meta-table">${rows}</dl>
      <button type="button" class="btn primary more" data-id="${esc(item.id)}">Search more like this</button></div>`;
    document.title = `${nameOf(item)} · Lookalike`;
    renderGrid($('#item-similar'), sim.results || [], { score: true, lazy: true });
    if (sim.error) setStatus(`Similar products are unavailable: ${sim.error.message}`, 'error');
    else setStatus('');
    if (focusNext) { $('#h-item').focus(); focusNext = false; }
  } catch (e) {
    if (e.name === 'AbortError') return;
    detail.innerHTML = `<h1 id="h-item" tabindex="-1">Product not found</h1><p>${esc(e.message)}</p>`;
    setStatus(e.message, 'error');
  }
}

/* ---------- routing ---------- */

const titles = { search: 'Visual search', browse: 'Catalogue', stats: 'Statistics' };
let focusNext = false;
let navCount = 0; // in-app navigations, so "Back" never leaves the app

const currentView = () => state.view;

function route() {
  const name = location.hash.replace(/^#\/?/, '').split('/')[0];
  const view = ['search', 'browse', 'stats', 'item'].includes(name) ? name : 'search';
  state.view = view;
  for (const v of $$('.view')) v.hidden = v.id !== `view-${view}`;
  for (const a of $$('[data-nav]')) {
    if (a.dataset.nav === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const slot = $(`.filters-slot[data-slot="${view}"]`);
  if (slot && !slot.contains($('#filters'))) slot.append($('#filters'));
  if (view !== 'item') document.title = `${titles[view]} · Lookalike`;
  if (view === 'browse') loadBrowse();
  if (view === 'stats') loadStats();
  if (view === 'item') {
    const id = decodeURIComponent(location.hash.replace(/^#\/item\//, ''));
    loadItem(id);
  } else if (focusNext) {
    $(`#h-${view}`).focus();
    focusNext = false;
  }
  if (view !== 'item') window.scrollTo(0, 0);
}

/* ---------- wiring ---------- */

function init() {
  crop = new CropBox($('#crop-frame'), $('#crop'), $('#crop-shade'), () => { state.located = false; if (state.mode === 'photo') { clearVotes(); runSearch(); } });
  $('#crop-reset').addEventListener('click', () => crop.reset(true));
  // Once the shopper moves the crop box, the garment outlines stand aside (dimmed, not
  // clickable): the crop names the garment to search, so they must not catch the drag.
  let cropAt = '';
  $('#crop').addEventListener('pointerdown', () => { cropAt = JSON.stringify(crop.r); $('#crop-frame').classList.add('cropping'); });
  $('#crop').addEventListener('pointerup', () => {
    if (JSON.stringify(crop.r) === cropAt) $('#crop-frame').classList.remove('cropping');
  });
  $('#crop').addEventListener('keydown', (e) => { if (e.key.startsWith('Arrow')) $('#crop-frame').classList.add('cropping'); });

  for (const input of [$('#file'), $('#camera')]) {
    input.addEventListener('change', () => { loadFile(input.files[0]); input.value = ''; });
  }

  const dz = $('#dropzone');
  let depth = 0;
  dz.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; dz.classList.add('over'); });
  dz.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; dz.classList.remove('over'); } });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    dz.classList.remove('over');
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) loadFile(f);
  });
  document.addEventListener('paste', (e) => {
    const items = [...((e.clipboardData && e.clipboardData.items) || [])];
    const it = items.find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (it) { e.preventDefault(); loadFile(it.getAsFile()); }
    else if (items.some((i) => i.kind === 'file')) { e.preventDefault(); loadFile(items.find((i) => i.kind === 'file').getAsFile()); }
  });

  $('#k').addEventListener('change', (e) => { state.k = Number(e.target.value); runSearch(); });
  $('#colour').addEventListener('change', (e) => { state.colour = e.target.value; runSearch(); });
  $('#trained').addEventListener('change', (e) => { state.trained = e.target.value; runSearch(); });
  $('#filters').addEventListener('change', filtersChanged);
  $('#filters').addEventListener('reset', () => setTimeout(filtersChanged));
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  $('#url-form').addEventListener('submit', (e) => { e.preventDefault(); searchByUrl($('#url-input').value); });

  document.addEventListener('click', (e) => {
    const more = e.target.closest('button.more[data-id]');
    if (more) { moreLike(more.dataset.id); return; }
    const thumb = e.target.closest('button[data-vote][data-id]');
    if (thumb) { vote(thumb.dataset.id, thumb.dataset.vote === 'up'); return; }
    const chip = e.target.closest('.garment-chip[data-index]');
    if (chip) { pickGarment(Number(chip.dataset.index)); return; }
    if (e.target.closest('#refine-reset')) { state.liked.clear(); state.unliked.clear(); runSearch(); return; }
    if (e.target.closest('#back-to-photo')) { state.mode = 'photo'; state.similarTo = null; clearVotes(); runSearch(); return; }
    if (e.target.closest('#item-back') && navCount > 0) { e.preventDefault(); history.back(); }
  });
  $('#prev').addEventListener('click', () => { if (state.page > 1) { state.page--; loadBrowse(); } });
  $('#next').addEventListener('click', () => { state.page++; loadBrowse(); });

  // Broken thumbnails get a neutral placeholder instead of the browser's icon.
  document.addEventListener('error', (e) => {
    if (e.target.tagName === 'IMG' && e.target.closest('.thumb')) e.target.closest('.thumb').classList.add('broken');
  }, true);

  let rt = 0;
  window.addEventListener('resize', () => {
    clearTimeout(rt);
    rt = setTimeout(() => { if ($('#charts').clientWidth !== chartWidth) drawCharts(); }, 150);
  });
  window.addEventListener('hashchange', () => {
    if (location.hash && !location.hash.startsWith('#/')) return; // in-page anchors such as the skip link
    focusNext = true;
    navCount++;
    route();
  });

  loadFacets();
  // The colour choice only exists for an index built with the colour descriptor.
  // So does the ranking choice, for an index with a trained projection (`lookalike train`).
  api.getStats().then((s) => {
    state.statsData = s;
    $('#colour-pick').hidden = !(s.colour_weight > 0);
    $('#trained-pick').hidden = !s.trained;
  }).catch(() => {});
  route();
}

init();
