// Mock of the lookalike HTTP API for developing/testing the web front end
// without the Rust server. Serves web/ at the same URLs as the real server and
// canned JSON built from the sample catalogue (styles.csv + images/<id>.jpg).
//
//   node tests/e2e/mock-server.mjs [--port 18080] [--catalog DIR]
//
// Env MOCK_FAIL=413|503 makes /api/search fail with that status (to see the messages).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const port = Number(arg('--port', process.env.PORT || 18080));
const catalog = arg('--catalog', process.env.CATALOG || '/work/shared/data/sample-catalog');
const webDir = path.join(root, 'web');

// --- catalogue (simple CSV: no quoted commas in the sample) ---
const lines = fs.readFileSync(path.join(catalog, 'styles.csv'), 'utf8').trim().split(/\r?\n/);
const header = lines[0].split(',');
const rows = lines.slice(1).map((l) => {
  const cells = l.split(',');
  const md = {};
  header.forEach((h, i) => { if (h !== 'id') md[h] = cells[i] ?? ''; });
  return { id: cells[0], metadata: md };
});
const byId = new Map(rows.map((r) => [r.id, r]));
const item = (r) => ({ id: r.id, metadata: r.metadata, image: `/images/${r.id}`, thumbnail: `/thumbs/${r.id}` });

function columnCounts(maxDistinct) {
  const out = [];
  for (const h of header) {
    if (h === 'id') continue;
    const counts = new Map();
    for (const r of rows) counts.set(r.metadata[h], (counts.get(r.metadata[h]) || 0) + 1);
    if (counts.size > maxDistinct) continue;
    out.push({ name: h, values: [...counts].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count) });
  }
  return out;
}

function parseFilters(list) {
  const f = [];
  for (const s of list) {
    const i = s.indexOf('=');
    if (i < 1) return { error: `bad filter "${s}", expected column=value` };
    f.push([s.slice(0, i), s.slice(i + 1)]);
  }
  return { f };
}
const matches = (r, f) => f.every(([c, v]) => String(r.metadata[c]) === v);

// Deterministic pseudo-similarity from a seed string.
function hash(s) { let h = 2166136261; for (const c of s) { h ^= c.charCodeAt(0); h = Math.imul(h, 16777619); } return h >>> 0; }
function rank(seed, f, k, exclude) {
  return rows.filter((r) => r.id !== exclude && matches(r, f))
    .map((r) => ({ r, s: (hash(seed + r.id) % 1000) / 1000 }))
    .sort((a, b) => b.s - a.s).slice(0, k)
    .map(({ r, s }, i) => ({ ...item(r), score: Math.round((0.97 - i * 0.03 - s * 0.02) * 1000) / 1000 }));
}

// --- minimal multipart parser ---
function parseMultipart(buf, ctype) {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/.exec(ctype || '');
  if (!m) return null;
  const boundary = Buffer.from(`--${m[1] || m[2]}`);
  const parts = [];
  let pos = buf.indexOf(boundary);
  while (pos >= 0) {
    const start = pos + boundary.length + 2;
    const next = buf.indexOf(boundary, start);
    if (next < 0) break;
    const part = buf.subarray(start, next - 2);
    const sep = part.indexOf('\r\n\r\n');
    const head = part.subarray(0, sep).toString('utf8');
    const name = /name="([^"]*)"/.exec(head)?.[1];
    const filename = /filename="([^"]*)"/.exec(head)?.[1];
    const type = /content-type:\s*(\S+)/i.exec(head)?.[1];
    parts.push({ name, filename, type, data: part.subarray(sep + 4) });
    pos = next;
  }
  return parts;
}

const send = (res, status, body, type = 'application/json') => {
  const data = type === 'application/json' ? JSON.stringify(body) : body;
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(data);
};
const err = (res, status, msg) => send(res, status, { error: msg });
const mime = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const isJpeg = (b) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8;
const isPng = (b) => b.length > 8 && b.subarray(1, 4).toString() === 'PNG';

/** Width and height of a JPEG (its SOF marker) or PNG (IHDR), for garment boxes in pixels of the photo. */
function imageSize(b) {
  if (isPng(b)) return { w: b.readUInt32BE(16), h: b.readUInt32BE(20) };
  for (let i = 2; isJpeg(b) && i + 9 < b.length;) {
    if (b[i] !== 0xff) { i++; continue; }
    const m = b[i + 1];
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) return { w: b.readUInt16BE(i + 7), h: b.readUInt16BE(i + 5) };
    i += 2 + b.readUInt16BE(i + 2);
  }
  return { w: 600, h: 600 };
}

// `all_garments=true`: an "outfit" upload has three garments (largest first; the shoes, like
// the real server's sometimes, without a searched square), any other photo one, a blank one none.
const OUTFIT = [
  { kind: 'bottom', confidence: 0.91, at: [0.55, 0.02, 0.4, 0.46], square: true, article: 'Trousers' },
  { kind: 'top', confidence: 0.88, at: [0.04, 0.05, 0.42, 0.4], square: true, article: 'Tshirts' },
  { kind: 'shoes', confidence: 0.74, at: [0.06, 0.62, 0.38, 0.22], square: false, article: 'Casual Shoes' },
];
function garmentsOf(img, seed, f, k) {
  const { w: W, h: H } = imageSize(img.data);
  const px = ([x, y, w, h]) => ({ x: Math.round(x * W), y: Math.round(y * H), w: Math.round(w * W), h: Math.round(h * H) });
  const list = /outfit/i.test(img.filename || '') ? OUTFIT
    : img.data.length < 2000 ? [] : [{ kind: 'top', confidence: 0.8, at: [0.1, 0.1, 0.8, 0.8], square: false, article: 'Tshirts' }];
  return list.map((g) => {
    const box = px(g.at);
    const side = Math.min(Math.max(box.w, box.h), W, H);
    const square = {
      x: Math.max(0, Math.min(W - side, Math.round(box.x + box.w / 2 - side / 2))),
      y: Math.max(0, Math.min(H - side, Math.round(box.y + box.h / 2 - side / 2))), w: side, h: side,
    };
    return {
      kind: g.kind, confidence: g.confidence, box, searched_box: g.square ? square : null,
      predicted: [{ column: 'articleType', value: g.article, probability: 0.8, source: 'model' }],
      results: rank(`${seed}|${g.kind}`, f, k), no_close_match: false,
    };
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try {
      if (p === '/' || p === '/index.html') return send(res, 200, fs.readFileSync(path.join(webDir, 'index.html')), mime['.html']);
      if (p.startsWith('/assets/')) {
        const name = path.basename(p);
        const f = path.join(webDir, name);
        if (!fs.existsSync(f)) return err(res, 404, 'no such asset');
        return send(res, 200, fs.readFileSync(f), mime[path.extname(name)] || 'application/octet-stream');
      }
      if (p === '/healthz') return send(res, 200, 'ok', 'text/plain');
      let m;
      if ((m = /^\/(images|thumbs)\/([^/]+)$/.exec(p))) {
        const f = path.join(catalog, 'images', `${path.basename(decodeURIComponent(m[2]))}.jpg`);
        if (!fs.existsSync(f)) return err(res, 404, 'no such image');
        return send(res, 200, fs.readFileSync(f), 'image/jpeg');
      }
      if (p === '/api/facets') return send(res, 200, { columns: columnCounts(50) });
      if (p === '/api/stats') return send(res, 200, { count: rows.length, dimension: 1280, model: 'efficientnet-lite0 (mock)', columns: columnCounts(1000) });
      if (p === '/api/search' && req.method === 'POST') {
        if (process.env.MOCK_FAIL) return err(res, Number(process.env.MOCK_FAIL), 'mock failure');
        const parts = parseMultipart(Buffer.concat(chunks), req.headers['content-type']);
        if (!parts) return err(res, 400, 'expected multipart/form-data');
        const field = (n) => parts.filter((x) => x.name === n).map((x) => x.data.toString('utf8'));
        const byUrl = field('url')[0];
        if (byUrl !== undefined && !/\/photo\.jpg$/.test(byUrl)) return err(res, 400, `${byUrl} answered HTTP 404`);
        const img = byUrl !== undefined ? { data: Buffer.from(byUrl) } : parts.find((x) => x.name === 'image');
        if (!img) return err(res, 400, 'missing field "image"');
        if (byUrl === undefined && !isJpeg(img.data) && !isPng(img.data)) return err(res, 400, 'the uploaded file is not a supported image');
        const k = Number(field('k')[0] || 5);
        if (!(k >= 1 && k <= 50)) return err(res, 400, 'k must be between 1 and 50');
        const crop = field('crop')[0] || '';
        if (crop && !/^\d+,\d+,\d+,\d+$/.test(crop)) return err(res, 400, `bad crop "${crop}"`);
        const { f, error } = parseFilters(field('filter'));
        if (error) return err(res, 400, error);
        const all = field('all_garments')[0] === 'true';
        if (all && crop) return err(res, 400, 'invalid parameter crop: every garment of a photo is searched by its own crop; leave crop out');
        console.log(`search k=${k} crop=${crop || '-'} all_garments=${all} filters=${JSON.stringify(f)} bytes=${img.data.length} file=${img.filename || '-'}`);
        const seed = `${img.data.length}|${crop}`;
        return send(res, 200, {
          results: rank(seed, f, k),
          predicted: [{ column: 'articleType', value: 'Tshirts', probability: 0.87, source: 'model' }],
          no_close_match: img.data.length < 2000,
          garments: all ? garmentsOf(img, seed, f, k) : undefined,
          vector: field('vector')[0] === 'true' ? [img.data.length % 7, 1, 0] : undefined,
          took_ms: 3.2 + Math.random() * 10,
        });
      }
      if (p === '/api/recommend' && req.method === 'POST') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
        const like = body.like || [], unlike = body.unlike || [];
        if (!like.length && !(body.like_vectors || []).length) return err(res, 400, 'give at least one liked item or photo');
        const { f, error } = parseFilters(Object.entries(body.filters || {}).map(([c, v]) => `${c}=${v}`));
        if (error) return err(res, 400, error);
        const k = Number(body.k || 5);
        const voted = new Set([...like, ...unlike]);
        const results = rank(`rec${like.join()}|${unlike.join()}`, f, k + voted.size).filter((r) => !voted.has(String(r.id))).slice(0, k);
        return send(res, 200, { results, no_close_match: false, took_ms: 1.4 });
      }
      if ((m = /^\/api\/items\/([^/]+)(\/similar)?$/.exec(p))) {
        const id = decodeURIComponent(m[1]);
        const r = byId.get(id);
        if (!r) return err(res, 404, `no item with id ${id}`);
        if (!m[2]) return send(res, 200, item(r));
        const { f, error } = parseFilters(url.searchParams.getAll('filter'));
        if (error) return err(res, 400, error);
        const k = Number(url.searchParams.get('k') || 5);
        return send(res, 200, { results: rank(`sim${id}`, f, k, id), took_ms: 1.1 });
      }
      if (p === '/api/items') {
        const { f, error } = parseFilters(url.searchParams.getAll('filter'));
        if (error) return err(res, 400, error);
        const page = Math.max(1, Number(url.searchParams.get('page') || 1));
        const per = Math.min(100, Math.max(1, Number(url.searchParams.get('per_page') || 24)));
        const all = rows.filter((r) => matches(r, f));
        return send(res, 200, { items: all.slice((page - 1) * per, page * per).map(item), total: all.length, page, per_page: per });
      }
      return err(res, 404, 'not found');
    } catch (e) {
      console.error(e);
      return err(res, 500, String(e.message || e));
    }
  });
});
server.listen(port, '127.0.0.1', () => console.log(`mock server on http://127.0.0.1:${port} (catalog ${catalog})`));
