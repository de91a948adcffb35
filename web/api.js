// Thin JSON client for the lookalike HTTP API. Every failure becomes an
// ApiError whose message is fit to show to a shopper.

export class ApiError extends Error {
  constructor(message, status = 0, kind = 'error') {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

function messageFor(status, serverMsg) {
  if (status === 413) return 'That photo is too large to upload. Please try a smaller image.';
  if (status === 503) return 'The search service is busy right now. Please try again in a moment.';
  if (status === 404) return serverMsg ? `Not found: ${serverMsg}` : 'Not found.';
  if (status === 415 || status === 422 || status === 400) {
    return serverMsg ? `Sorry, that did not work: ${serverMsg}` : 'The server could not use that request.';
  }
  return serverMsg ? `Server error: ${serverMsg}` : `Server error (HTTP ${status}). Please try again.`;
}

export async function request(path, opts = {}) {
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError('Network problem: could not reach the server. Check your connection and try again.', 0, 'network');
  }
  if (!res.ok) {
    let serverMsg = '';
    try {
      const body = await res.json();
      serverMsg = body && body.error ? String(body.error) : '';
    } catch { /* not JSON */ }
    const kind = res.status === 413 ? 'too-large' : res.status === 503 ? 'busy' : 'http';
    throw new ApiError(messageFor(res.status, serverMsg), res.status, kind);
  }
  try {
    return await res.json();
  } catch {
    throw new ApiError('The server sent an unreadable answer. Please try again.', res.status, 'parse');
  }
}

/** Build "a=b&filter=c%3Dd..." from a plain object plus a filter map. */
export function query(params, filters) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.append(k, v);
  for (const [col, val] of Object.entries(filters || {})) if (val !== '') q.append('filter', `${col}=${val}`);
  const s = q.toString();
  return s ? `?${s}` : '';
}

function searchForm(fd, { k, crop, filters, colour, trained, allGarments }) {
  fd.append('k', String(k));
  if (colour !== undefined && colour !== '') fd.append('colour', String(colour));
  if (trained !== undefined && trained !== '') fd.append('trained', String(trained));
  if (crop) fd.append('crop', `${crop.x},${crop.y},${crop.w},${crop.h}`);
  // Every garment of the photo, each with its own results ("shop the look"); the server
  // refuses it together with a crop, which names the one garment to search.
  else if (allGarments) fd.append('all_garments', 'true');
  for (const [col, val] of Object.entries(filters || {})) if (val !== '') fd.append('filter', `${col}=${val}`);
  // The query's vector comes back, so thumbs up/down can refine without re-uploading.
  fd.append('vector', 'true');
  return fd;
}

export function searchImage(file, opts, signal) {
  const fd = new FormData();
  fd.append('image', file, file.name || 'photo.jpg');
  return request('/api/search', { method: 'POST', body: searchForm(fd, opts), signal });
}

/** Search by a photo on the web: the server fetches it (public addresses only). */
export function searchUrl(url, opts, signal) {
  const fd = new FormData();
  fd.append('url', url);
  return request('/api/search', { method: 'POST', body: searchForm(fd, opts), signal });
}

/** More like the liked ids and vectors, less like the disliked ids. */
export function recommend({ like, unlike, likeVectors, k, filters, colour }, signal) {
  const body = { like, unlike, like_vectors: likeVectors, k, filters: {} };
  for (const [col, val] of Object.entries(filters || {})) if (val !== '') body.filters[col] = val;
  if (colour !== undefined && colour !== '') body.colour = Number(colour);
  return request('/api/recommend', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal,
  });
}

export const getItem = (id, signal) => request(`/api/items/${encodeURIComponent(id)}`, { signal });
export const similar = (id, k, filters, signal, colour, trained) =>
  request(`/api/items/${encodeURIComponent(id)}/similar${query({
    k, colour: colour === '' ? undefined : colour, trained: trained === '' ? undefined : trained,
  }, filters)}`, { signal });
export const listItems = (page, perPage, filters, signal) =>
  request(`/api/items${query({ page, per_page: perPage }, filters)}`, { signal });
export const getFacets = () => request('/api/facets');
export const getStats = () => request('/api/stats');
