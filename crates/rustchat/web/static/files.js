// Files: upload (POST /files, multipart channel_id + file) and the download links on
// posts (GET /files/{id}, same-origin with the cookie; the server sends attachments with
// Content-Disposition and a sandbox CSP, so nothing uploaded runs in this origin).

import { api } from './api.js';
import { h, clear } from './dom.js';

const infoCache = new Map();
const INLINE_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/** Uploads `file` to `channelId`; resolves to the file info. */
export async function uploadFile(channelId, file) {
  const form = new FormData();
  form.append('channel_id', channelId); // first: the server checks membership before the bytes
  form.append('file', file, file.name);
  const info = await api.post('/files', form);
  infoCache.set(info.id, info);
  return info;
}

/** "1.2 MB" style sizes. */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

async function info(id) {
  if (!infoCache.has(id)) infoCache.set(id, await api.get(`/files/${encodeURIComponent(id)}/info`));
  return infoCache.get(id);
}

/** The download list for a post's file_ids (filled in as the infos arrive). */
export function fileList(fileIds) {
  const ul = h('ul', { class: 'files' });
  for (const id of fileIds) {
    const li = h('li', { class: 'file', data: { fileId: id } }, h('span', { class: 'muted', text: 'file…' }));
    ul.append(li);
    info(id).then((f) => {
      const href = `/api/v1/files/${encodeURIComponent(f.id)}`;
      clear(li);
      if (INLINE_IMAGES.has(f.mime_type)) {
        li.append(h('img', { class: 'thumb', src: href, alt: f.name }));
      }
      li.append(
        h('a', { class: 'file-link', href, download: f.name, text: f.name }),
        h('span', { class: 'muted file-size', text: ` ${formatSize(f.size)}` }),
      );
    }).catch(() => {
      clear(li);
      li.append(h('span', { class: 'muted', text: 'file unavailable' }));
    });
  }
  return ul;
}
