// Browser end-to-end test of the lookalike web page.
//   BASE_URL=http://127.0.0.1:18080 QUERY_IMAGE=photo.jpg [OUTFIT_IMAGE=outfit.jpg] SHOTS_DIR=shots node e2e.mjs
// OUTFIT_IMAGE (default tests/fixtures/queries/outfit.jpg): a photo of several garments ("shop the look").
// Exits 0 when every step passes, 1 (with a FAIL line) otherwise. Total timeout 120 s.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE_URL = (process.env.BASE_URL || 'http://127.0.0.1:18080').replace(/\/$/, '');
const QUERY_IMAGE = process.env.QUERY_IMAGE;
const OUTFIT_IMAGE = process.env.OUTFIT_IMAGE || path.resolve(here, '../fixtures/queries/outfit.jpg');
const SHOTS_DIR = process.env.SHOTS_DIR || 'shots';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 20_000;

const t0 = Date.now();
const log = (msg) => console.log(`[e2e ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);
let browser;
async function fail(msg) {
  console.error(`[e2e] FAIL: ${msg}`);
  process.exitCode = 1;
  try { if (browser) await browser.close(); } catch { /* ignore */ }
  process.exit(1);
}
const check = (cond, msg) => { if (!cond) throw new Error(msg); };

const total = setTimeout(() => fail('total timeout of 120 s exceeded'), 120_000);

if (!QUERY_IMAGE || !fs.existsSync(QUERY_IMAGE)) await fail(`QUERY_IMAGE not set or missing: ${QUERY_IMAGE}`);
if (!fs.existsSync(OUTFIT_IMAGE)) await fail(`OUTFIT_IMAGE missing: ${OUTFIT_IMAGE}`);

// A real web server for the URL search: it serves the query photo, and the lookalike
// server fetches it from there (run.sh starts it with --fetch-allow 127.0.0.1).
const photoServer = http.createServer((req, res) => {
  if (req.url === '/photo.jpg') {
    res.writeHead(200, { 'Content-Type': 'image/jpeg' });
    res.end(fs.readFileSync(QUERY_IMAGE));
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not here');
  }
});
await new Promise((ok) => photoServer.listen(0, '127.0.0.1', ok));
const PHOTO_URL = `http://127.0.0.1:${photoServer.address().port}/photo.jpg`;
const recommendRequest = (page) => page.waitForRequest(
  (r) => r.url().endsWith('/api/recommend') && r.method() === 'POST', { timeout: STEP_TIMEOUT });
if (!fs.existsSync(CHROMIUM)) await fail(`no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
fs.mkdirSync(SHOTS_DIR, { recursive: true });

/** Wait until the grid has re-rendered after `prevSeq`, is not busy, and all its card images loaded. */
/** Drag the crop box's bottom-right handle up and left by `share` of the photo's frame. */
async function dragCorner(page, share, steps) {
  const frame = await page.locator('#crop-frame').boundingBox();
  const h = await page.locator('.handle[data-h="se"]').boundingBox();
  await page.mouse.move(h.x + h.width / 2, h.y + h.height / 2);
  await page.mouse.down();
  await page.mouse.move(h.x + h.width / 2 - frame.width * share, h.y + h.height / 2 - frame.height * share, { steps });
  await page.mouse.up();
}

async function waitGrid(page, sel, prevSeq, { images = true, min = 1 } = {}) {
  await page.waitForFunction(({ sel, prevSeq, images, min }) => {
    const ul = document.querySelector(sel);
    if (!ul || Number(ul.dataset.seq || 0) <= prevSeq || ul.getAttribute('aria-busy') === 'true') return false;
    const imgs = [...ul.querySelectorAll('.card img')];
    if (imgs.length < min) return false;
    return !images || imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, { sel, prevSeq, images, min }, { timeout: STEP_TIMEOUT, polling: 100 }).catch(async () => {
    const status = await page.textContent('#status').catch(() => '');
    throw new Error(`grid ${sel} did not (re)load with images within ${STEP_TIMEOUT / 1000}s; status: "${(status || '').trim()}"`);
  });
}
const seq = (page, sel) => page.$eval(sel, (el) => Number(el.dataset.seq || 0));
const ids = (page, sel) => page.$$eval(`${sel} .card`, (els) => els.map((e) => e.dataset.id));
const shot = async (page, name, fullPage = false) => {
  await page.screenshot({ path: path.join(SHOTS_DIR, name), fullPage });
  log(`  screenshot ${name}`);
};
const searchRequest = (page) => page.waitForRequest(
  (r) => r.url().endsWith('/api/search') && r.method() === 'POST', { timeout: STEP_TIMEOUT });
// The JSON the page got: the garments it must show as chips.
const searchAnswer = (page) => page.waitForResponse(
  (r) => r.url().endsWith('/api/search') && r.request().method() === 'POST', { timeout: STEP_TIMEOUT }).then((r) => r.json());
/** Each chip of `where` (#look-boxes: on the photo, #look-chips: the row above the results). */
const chips = (page, where) => page.$$eval(`${where} .garment-chip`, (els) => els.map((e) => {
  const r = e.getBoundingClientRect();
  return { index: Number(e.dataset.index), kind: e.dataset.kind, pressed: e.getAttribute('aria-pressed'),
    text: e.textContent.trim(), rect: { x: r.x, y: r.y, w: r.width, h: r.height } };
}));
const noHScroll = async (page, where) => {
  const w = await page.evaluate(() => document.scrollingElement.scrollWidth);
  check(w <= 360, `${where}: horizontal scroll at 360 px (scrollWidth ${w})`);
};

try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const pageErrors = [];
  page.on('pageerror', (e) => { pageErrors.push(e.message); console.error(`[page error] ${e.message}`); });
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[console] ${m.text()}`); });

  // 0. shop the look: a photo of several garments gets a chip per garment
  log(`0. shop the look: upload ${OUTFIT_IMAGE}`);
  {
    let searches = 0;
    page.on('request', (r) => { if (r.url().endsWith('/api/search') && r.method() === 'POST') searches++; });
    await page.goto(`${BASE_URL}/#/search`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#file', { state: 'attached' });
    const answer = searchAnswer(page);
    await page.setInputFiles('#file', OUTFIT_IMAGE);
    const json = await answer;
    const garments = json.garments || [];
    check(garments.length >= 2, `the server found ${garments.length} garment(s) in ${OUTFIT_IMAGE}; the step needs 2 or more`);
    await waitGrid(page, '#results', 0);
    await page.waitForSelector('#preview-img', { state: 'visible' });
    check(await page.$eval('#results', (el) => el.dataset.allGarments) === 'true', 'the photo search was not sent with all_garments=true');
    const resultIds = (g) => (g.results || []).map((r) => String(r.id));
    const kinds = garments.map((g) => g.kind);
    let onPhoto = await chips(page, '#look-boxes');
    let inRow = await chips(page, '#look-chips');
    check(await page.locator('#look').isVisible() && await page.locator('#look-boxes').isVisible(), 'the garment chips are not shown');
    check(JSON.stringify(onPhoto.map((c) => c.kind)) === JSON.stringify(kinds), `chips on the photo ${JSON.stringify(onPhoto.map((c) => c.kind))}, garments ${JSON.stringify(kinds)}`);
    check(JSON.stringify(inRow.map((c) => c.kind)) === JSON.stringify(kinds), `chips in the row ${JSON.stringify(inRow.map((c) => c.kind))}, garments ${JSON.stringify(kinds)}`);
    check(inRow.every((c, i) => c.text.startsWith(kinds[i])), `chip buttons do not name their kind: ${inRow.map((c) => c.text).join(', ')}`);
    const pressed = (list) => list.filter((c) => c.pressed === 'true').map((c) => c.index);
    check(JSON.stringify(pressed(onPhoto)) === '[0]' && JSON.stringify(pressed(inRow)) === '[0]',
      `the first (largest) garment is not the one chosen: photo ${pressed(onPhoto)}, row ${pressed(inRow)}`);
    // The outlines are the garments' boxes, scaled to the preview as shown.
    const img = await page.$eval('#preview-img', (i) => { const r = i.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height, nw: i.naturalWidth, nh: i.naturalHeight }; });
    for (const c of onPhoto) {
      const b = garments[c.index].box;
      const want = { x: img.x + (b.x * img.w) / img.nw, y: img.y + (b.y * img.h) / img.nh, w: (b.w * img.w) / img.nw, h: (b.h * img.h) / img.nh };
      check(['x', 'y', 'w', 'h'].every((k) => Math.abs(want[k] - c.rect[k]) <= 2),
        `the ${c.kind} outline is at ${JSON.stringify(c.rect)}, its box ${JSON.stringify(b)} is at ${JSON.stringify(want)} on the preview`);
    }
    const look = () => page.$eval('#results', (el) => ({ kind: el.dataset.lookKind, index: el.dataset.lookIndex }));
    check((await look()).kind === kinds[0], `#results data-look-kind is "${(await look()).kind}", not "${kinds[0]}"`);
    check(JSON.stringify(await ids(page, '#results')) === JSON.stringify(resultIds(garments[0])), 'the results are not the first garment\'s');
    log(`  ${garments.length} garments: ${kinds.join(', ')}; showing the ${kinds[0]}: ${resultIds(garments[0]).join(', ')}`);
    await shot(page, '00-look.png');

    // Choosing another garment shows its results, from the same answer.
    const asked = searches;
    let s = await seq(page, '#results');
    await page.locator('#look-chips .garment-chip[data-index="1"]').click();
    await waitGrid(page, '#results', s);
    check(JSON.stringify(await ids(page, '#results')) === JSON.stringify(resultIds(garments[1])),
      `after choosing the ${kinds[1]} the results are not its own`);
    check((await look()).kind === kinds[1] && (await look()).index === '1', `data-look-kind/index not updated: ${JSON.stringify(await look())}`);
    onPhoto = await chips(page, '#look-boxes');
    inRow = await chips(page, '#look-chips');
    check(JSON.stringify(pressed(onPhoto)) === '[1]' && JSON.stringify(pressed(inRow)) === '[1]',
      `the ${kinds[1]} is not marked chosen: photo ${pressed(onPhoto)}, row ${pressed(inRow)}`);
    check(await page.evaluate(() => document.activeElement?.matches('#look-chips .garment-chip[data-index="1"]')), 'the chosen chip lost the focus');
    const garmentBox = (g) => { const b = g.searched_box || g.box; return `${b.x},${b.y},${b.w},${b.h}`; };
    check(await page.$eval('#results', (el) => el.dataset.garment) === garmentBox(garments[1]), 'the crop box does not show the chosen garment');
    log(`  chose the ${kinds[1]}: ${resultIds(garments[1]).join(', ')}`);
    await shot(page, '00b-look-chip.png');

    // ...and so does its outline on the photo (a spot of it no other outline or crop handle covers).
    const j = garments.length > 2 ? 2 : 0;
    const spot = await page.evaluate((j) => {
      const el = document.querySelector(`#look-boxes .garment-chip[data-index="${j}"]`);
      const r = el.getBoundingClientRect();
      for (let fy = 0.5; fy < 1; fy += 0.1) {
        for (let fx = 0.5; fx < 1; fx += 0.1) {
          for (const [x, y] of [[r.x + r.width * fx, r.y + r.height * fy], [r.x + r.width * (1 - fx), r.y + r.height * (1 - fy)]]) {
            if (document.elementFromPoint(x, y)?.closest('.garment-chip') === el) return { x, y };
          }
        }
      }
      return null;
    }, j);
    check(spot, `no spot of the ${kinds[j]} outline can be clicked`);
    s = await seq(page, '#results');
    await page.mouse.click(spot.x, spot.y);
    await waitGrid(page, '#results', s);
    check(JSON.stringify(await ids(page, '#results')) === JSON.stringify(resultIds(garments[j])),
      `after clicking the ${kinds[j]} outline the results are not its own`);
    check((await look()).kind === kinds[j], `data-look-kind is "${(await look()).kind}" after clicking the ${kinds[j]} outline`);
    check(JSON.stringify(pressed(await chips(page, '#look-chips'))) === `[${j}]`, `the ${kinds[j]} chip is not marked chosen`);
    check(searches === asked, `choosing a garment sent ${searches - asked} new search(es)`);
    log(`  clicked the ${kinds[j]} outline: ${resultIds(garments[j]).join(', ')}`);

    // Moving the crop box searches that crop alone (the server refuses a crop with all_garments).
    s = await seq(page, '#results');
    await dragCorner(page, 0.1, 4);
    await waitGrid(page, '#results', s);
    const sent = await page.$eval('#results', (el) => ({ crop: el.dataset.crop, all: el.dataset.allGarments }));
    check(/^\d+,\d+,\d+,\d+$/.test(sent.crop || '') && sent.all === 'false', `the crop search sent crop="${sent.crop}", all_garments=${sent.all}`);
    check(!(await page.locator('#look').isVisible()) && (await page.locator('.garment-chip').count()) === 0, 'garment chips stayed after searching a crop');
    check(!(await page.locator('#status.error').count()), `the crop search failed: ${await page.textContent('#status')}`);
    log(`  moved the crop box: searched crop=${sent.crop} alone, chips gone`);
    // "Reset crop" asks for every garment again.
    s = await seq(page, '#results');
    await page.locator('#crop-reset').click();
    await waitGrid(page, '#results', s);
    inRow = await chips(page, '#look-chips');
    check(inRow.length === garments.length && pressed(inRow).length === 1, `after "Reset crop" the chips are ${JSON.stringify(inRow.map((c) => c.kind))}`);
    log(`  reset the crop: ${inRow.length} chips again`);
  }

  // 1. upload
  log(`1. open ${BASE_URL}/ and upload ${QUERY_IMAGE}`);
  await page.goto(`${BASE_URL}/#/search`, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#file', { state: 'attached' });
  await page.waitForSelector('#filter-fields select', { state: 'attached' }).catch(() => {
    throw new Error('no filter selects appeared (GET /api/facets failed or returned no columns)');
  });
  const req1 = searchRequest(page);
  const ans1 = searchAnswer(page);
  await page.setInputFiles('#file', QUERY_IMAGE);
  await req1;
  await waitGrid(page, '#results', 0);
  await page.waitForSelector('#preview-img', { state: 'visible' });
  const first = await ids(page, '#results');
  log(`  ${first.length} results: ${first.join(', ')}`);
  // Chips only when the server found 2 or more garments: with one, the page is the single-garment one.
  const found = ((await ans1).garments || []).length;
  const shownChips = await page.locator('#look-chips .garment-chip').count();
  check(shownChips === (found >= 2 ? found : 0), `${shownChips} garment chips for ${found} garment(s) found`);
  if (found >= 2) log(`  the server found ${found} garments in it: chips shown`);
  // What the model says the photo shows, and where it found the garment (if it did).
  const looks = (await page.textContent('#looks-like')) || '';
  check(/^Looks like: .+, \d+%/.test(looks.trim()), `no "Looks like" line (got "${looks}")`);
  const garment = await page.$eval('#results', (el) => el.dataset.garment || '');
  if (garment) {
    const full = await page.$eval('#crop', (el) => el.style.width === '100%' && el.style.height === '100%');
    check(!full, `the garment box ${garment} was not shown as the crop box`);
  }
  log(`  ${looks.trim()}${garment ? `; garment at ${garment}` : ''}`);
  await shot(page, '01-results.png');

  // 1b. thumbs up / down refine the results without uploading the photo again
  log('1b. thumbs up on the first result, thumbs down on the next');
  {
    let s = await seq(page, '#results');
    const liked = first[0];
    const req = recommendRequest(page);
    await page.locator(`#results .card[data-id="${liked}"] button[data-vote="up"]`).click();
    const body = JSON.parse((await req).postData() || '{}');
    check(JSON.stringify(body.like) === JSON.stringify([liked]), `recommend not sent with like=[${liked}] (sent ${JSON.stringify(body.like)})`);
    check(Array.isArray(body.like_vectors) && body.like_vectors.length === 1 && body.like_vectors[0].length > 0,
      'recommend was not sent with the photo\'s vector');
    await waitGrid(page, '#results', s);
    const up = await ids(page, '#results');
    check(!up.includes(liked), `the liked item ${liked} is still among the results`);
    check(await page.locator('#refine').isVisible(), 'the "Refined by your choices" bar is not shown');
    const disliked = up[0];
    s = await seq(page, '#results');
    const req2 = recommendRequest(page);
    await page.locator(`#results .card[data-id="${disliked}"] button[data-vote="down"]`).click();
    const body2 = JSON.parse((await req2).postData() || '{}');
    check(JSON.stringify(body2.unlike) === JSON.stringify([disliked]), `recommend not sent with unlike=[${disliked}]`);
    await waitGrid(page, '#results', s);
    const down = await ids(page, '#results');
    check(!down.includes(disliked) && !down.includes(liked), 'a voted item is still among the results');
    log(`  liked ${liked}: ${up.join(', ')}; then not ${disliked}: ${down.join(', ')}`);
    await shot(page, '01b-refined.png');
    s = await seq(page, '#results');
    const back = searchRequest(page);
    await page.locator('#refine-reset').click();
    await back;
    await waitGrid(page, '#results', s);
    check(JSON.stringify(await ids(page, '#results')) === JSON.stringify(first), '"Start over" did not bring back the first results');
    check(!(await page.locator('#refine').isVisible()), 'the refine bar stayed after "Start over"');
  }

  // 2. crop: drag the bottom-right handle up/left, then move the box
  log('2. drag the crop box');
  let s = await seq(page, '#results');
  await dragCorner(page, 0.35, 6);
  const frame = await page.locator('#crop-frame').boundingBox();
  const box = await page.locator('#crop').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + frame.width * 0.1, box.y + box.height / 2 + frame.height * 0.1, { steps: 4 });
  await page.mouse.up();
  await waitGrid(page, '#results', s);
  // the page records the crop/filter fields of the search it rendered (multipart bodies are not visible to CDP)
  const crop = await page.$eval('#results', (el) => el.dataset.crop);
  check(crop && /^\d+,\d+,\d+,\d+$/.test(crop), `search after crop had no valid crop field (got "${crop}")`);
  check(await page.$eval('#results', (el) => el.dataset.allGarments) === 'false', 'the crop search was sent with all_garments=true');
  log(`  searched again with crop=${crop}`);
  await shot(page, '02-crop.png');

  // 3. filter: pick a value in the first facet select
  log('3. apply a filter');
  const sel = page.locator('#filter-fields select').first();
  const col = await sel.getAttribute('name');
  const values = await sel.locator('option').evaluateAll((os) => os.map((o) => o.value).filter((v) => v !== ''));
  check(values.length > 0, `first facet "${col}" has no values`);
  const metaOf = (list) => page.evaluate(async (list) => Promise.all(list.map((id) =>
    fetch(`/api/items/${encodeURIComponent(id)}`).then((r) => r.json()).then((j) => j.metadata || {}))), list);
  const cur = (await metaOf(await ids(page, '#results'))).map((m) => String(m[col]));
  // prefer a value the current results do not all carry, so the results must change
  const value = values.find((v) => cur.some((c) => c !== v) && !cur.includes(v))
    || values.find((v) => cur.some((c) => c !== v)) || values[0];
  s = await seq(page, '#results');
  const before = await ids(page, '#results');
  await sel.selectOption(value);
  await waitGrid(page, '#results', s);
  const sent = new URLSearchParams(await page.$eval('#results', (el) => el.dataset.filters));
  check(sent.get(col) === value, `search was not sent with filter ${col}=${value} (sent "${sent}")`);
  const after = await ids(page, '#results');
  const wrong = (await metaOf(after)).map((m, i) => [after[i], m[col]]).filter(([, v]) => String(v) !== value);
  check(wrong.length === 0, `results not matching ${col}=${value}: ${JSON.stringify(wrong)}`);
  log(`  ${col}=${value}: ${after.length} results, all match (${JSON.stringify(before) === JSON.stringify(after) ? 'same' : 'changed'} ids)`);
  await shot(page, '03-filter.png');

  // 3b. the "Match" menu (shown for an index with the colour descriptor): shape only
  if (await page.locator('#colour-pick').isVisible()) {
    log('3b. match by shape only, then back');
    s = await seq(page, '#results');
    await page.locator('#colour').selectOption('0');
    await waitGrid(page, '#results', s);
    const sentColour = await page.$eval('#results', (el) => el.dataset.colour);
    check(sentColour === '0', `search was not sent with colour=0 (sent "${sentColour}")`);
    log(`  shape only: ${(await ids(page, '#results')).length} results`);
    s = await seq(page, '#results');
    await page.locator('#colour').selectOption('');
    await waitGrid(page, '#results', s);
  } else {
    log('3b. no "Match" menu (index without colour)');
  }

  // 3c. the "Ranking" menu (shown for an index with a trained projection): look only
  const trainedMenu = await page.locator('#trained-pick').isVisible();
  check(trainedMenu === (process.env.EXPECT_TRAINED === '1'),
    `"Ranking" menu ${trainedMenu ? 'shown' : 'hidden'}, EXPECT_TRAINED=${process.env.EXPECT_TRAINED ?? ''}`);
  if (trainedMenu) {
    log('3c. rank by look only, then back');
    const taught = await ids(page, '#results');
    s = await seq(page, '#results');
    await page.locator('#trained').selectOption('0');
    await waitGrid(page, '#results', s);
    const sentTrained = await page.$eval('#results', (el) => el.dataset.trained);
    check(sentTrained === '0', `search was not sent with trained=0 (sent "${sentTrained}")`);
    const look = await ids(page, '#results');
    log(`  look only: ${look.length} results (${JSON.stringify(taught) === JSON.stringify(look) ? 'same' : 'changed'} ids)`);
    s = await seq(page, '#results');
    await page.locator('#trained').selectOption('');
    await waitGrid(page, '#results', s);
  } else {
    log('3c. no "Ranking" menu (index without a trained projection)');
  }

  // 4. more like this
  log('4. "More like this" on the first result');
  s = await seq(page, '#results');
  const firstId = after[0];
  await page.locator('#results .card').first().getByRole('button', { name: /more like/i }).click();
  await waitGrid(page, '#results', s);
  const similar = await ids(page, '#results');
  check(JSON.stringify(similar) !== JSON.stringify(after), 'results did not change after "More like this"');
  check(!similar.includes(firstId), `similar results include the item itself (${firstId})`);
  check(await page.locator('#based-on').isVisible(), '"based on" banner not shown');
  log(`  based on ${firstId}: ${similar.join(', ')}`);
  await shot(page, '04-more-like-this.png');

  // 5. product view
  log('5. open a product');
  await page.locator('#results .card-link').first().click();
  await page.waitForSelector('#item-detail h1');
  await page.waitForSelector('#item-detail .meta-table dt');
  await waitGrid(page, '#item-similar', 0, { images: false, min: 0 });
  await page.waitForFunction(() => { const i = document.querySelector('#item-detail img'); return i && i.complete && i.naturalWidth > 0; })
    .catch(() => { throw new Error('product image did not load'); });
  log(`  ${await page.textContent('#item-detail h1')}`);
  await shot(page, '05-item.png');

  // 6. statistics
  log('6. statistics page');
  await page.getByRole('link', { name: 'Statistics' }).click();
  await page.waitForSelector('#charts svg[role="img"] rect.bar');
  const charts = await page.$$eval('#charts svg[role="img"]', (svgs) => svgs.map((g) => ({
    label: g.getAttribute('aria-label') || '', title: g.querySelector('title')?.textContent || '',
    bars: g.querySelectorAll('rect.bar').length, counts: g.querySelectorAll('text.count').length,
  })));
  check(charts.length > 0 && charts.every((c) => c.bars > 0 && c.counts === c.bars && c.label && c.title), `bad charts: ${JSON.stringify(charts)}`);
  check(charts.every((c) => c.bars <= 26), 'a chart has more than 25 bars + other');
  log(`  ${charts.length} charts, bars: ${charts.map((c) => c.bars).join(', ')}`);
  await shot(page, '06-stats.png', true);

  // 7. catalogue browser
  log('7. catalogue browser');
  s = await seq(page, '#browse-grid');
  await page.getByRole('link', { name: 'Catalogue' }).click();
  await waitGrid(page, '#browse-grid', s - 1, { images: false });
  if (await page.locator('#filters-clear').isVisible()) {
    s = await seq(page, '#browse-grid');
    await page.locator('#filters-clear').click();
    await waitGrid(page, '#browse-grid', s, { images: false });
  }
  const info1 = (await page.textContent('#page-info')).trim();
  const p1 = await ids(page, '#browse-grid');
  check(/Page 1 of \d+/.test(info1), `unexpected page info "${info1}"`);
  log(`  ${info1}: ${p1.length} items`);
  await shot(page, '07-browse.png');
  if (await page.locator('#next').isEnabled()) {
    s = await seq(page, '#browse-grid');
    await page.locator('#next').click();
    await waitGrid(page, '#browse-grid', s, { images: false });
    const info2 = (await page.textContent('#page-info')).trim();
    const p2 = await ids(page, '#browse-grid');
    check(/Page 2 of/.test(info2), `after Next the page info is "${info2}"`);
    check(p2.length > 0 && p2.every((id) => !p1.includes(id)), 'page 2 repeats items of page 1');
    check(await page.locator('#prev').isEnabled(), 'Previous is disabled on page 2');
    log(`  ${info2}: ${p2.length} items`);
  } else {
    log('  only one page: paging not exercised');
  }

  // 8. phone width
  log('8. 360x740 viewport');
  await page.setViewportSize({ width: 360, height: 740 });
  await page.getByRole('link', { name: 'Search' }).first().click();
  await page.waitForSelector('#view-search:not([hidden])');
  await page.waitForTimeout(200);
  await noHScroll(page, 'search');
  await shot(page, '08-mobile-search.png', true);
  await page.getByRole('link', { name: 'Catalogue' }).click();
  await page.waitForSelector('#browse-grid .card');
  await noHScroll(page, 'catalogue');
  await shot(page, '09-mobile-browse.png');
  await page.getByRole('link', { name: 'Statistics' }).click();
  await page.waitForSelector('#charts svg rect.bar');
  await page.waitForTimeout(300); // charts redraw to the new width
  await noHScroll(page, 'statistics');
  await shot(page, '10-mobile-stats.png');
  log('  no horizontal scroll');

  // 8c. search by a photo's web address
  log(`8c. search by URL ${PHOTO_URL}`);
  {
    await page.getByRole('link', { name: 'Search' }).first().click();
    const s = await seq(page, '#results');
    await page.fill('#url-input', PHOTO_URL);
    const req = searchRequest(page);
    await page.locator('#url-form button[type="submit"]').click();
    const sent = (await req).postData() || '';
    check(sent.includes(PHOTO_URL), 'the search was not sent with the url field');
    await waitGrid(page, '#results', s);
    const byUrl = await ids(page, '#results');
    check(byUrl.length > 0, 'no results for the URL search');
    check(await page.locator('#based-on').isVisible(), 'the searched URL is not shown');
    log(`  ${byUrl.length} results: ${byUrl.join(', ')}`);
    await shot(page, '11b-url-search.png');
    // A page that is not a photo gets the server's message.
    await page.fill('#url-input', PHOTO_URL.replace('photo.jpg', 'nothing.jpg'));
    await page.locator('#url-form button[type="submit"]').click();
    await page.waitForSelector('#status.error', { timeout: STEP_TIMEOUT });
    const msg = (await page.textContent('#status')).trim();
    check(/404/.test(msg), `unexpected message for a missing photo URL: "${msg}"`);
    log(`  missing photo: "${msg}"`);
  }

  // 8d. a photo with nothing of the catalogue in it: the "no close match" notice
  log('8d. a flat grey picture: "No close match"');
  {
    const s = await seq(page, '#results');
    const dataUrl = await page.evaluate(() => {
      const c = document.createElement('canvas');
      c.width = 200; c.height = 200;
      const g = c.getContext('2d');
      g.fillStyle = '#808080';
      g.fillRect(0, 0, 200, 200);
      return c.toDataURL('image/png');
    });
    const buffer = Buffer.from(dataUrl.split(',')[1], 'base64');
    await page.setInputFiles('#file', { name: 'grey.png', mimeType: 'image/png', buffer });
    await waitGrid(page, '#results', s);
    check(await page.locator('#no-match').isVisible(), 'no "No close match" notice for a grey picture');
    check(/no close match/i.test(await page.textContent('#status')), 'the status does not say "No close match"');
    await shot(page, '11c-no-close-match.png');
  }

  // 9. not an image
  log('9. upload a text file');
  await page.getByRole('link', { name: 'Search' }).first().click();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lookalike-e2e-'));
  const txt = path.join(tmp, 'notes.txt');
  fs.writeFileSync(txt, 'this is not a photo\n');
  await page.setInputFiles('#file', txt);
  await page.waitForSelector('#status.error', { timeout: STEP_TIMEOUT });
  const msg = (await page.textContent('#status')).trim();
  check(/not an image|could not be read|not a supported image/i.test(msg), `unexpected error message "${msg}"`);
  log(`  message: "${msg}"`);
  await shot(page, '11-not-image.png');
  fs.rmSync(tmp, { recursive: true, force: true });

  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join(' | ')}`);
  await browser.close();
  photoServer.close();
  clearTimeout(total);
  log(`PASS: all steps passed; screenshots in ${SHOTS_DIR}`);
} catch (e) {
  await fail(e.message);
}
