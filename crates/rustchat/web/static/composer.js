// Composers (channel and thread): Enter sends, Shift+Enter adds a line; files upload as
// soon as they are picked and ride along as file_ids; typing is announced at most every
// 2 s (the server forwards at most one per second anyway). Each post carries a random
// client_msg_id so a retried send never duplicates (CHAT-R14).

import { api } from './api.js';
import { h, showError } from './dom.js';
import { uploadFile, formatSize } from './files.js';

const TYPING_EVERY_MS = 2000;

function newClientMsgId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Wires one composer. `opts`: form, input, fileInput, pendingList, errorEl, sendButton,
 * channelId() and rootId() (current targets), onTyping(), onPosted(post).
 */
export function bindComposer(opts) {
  const { form, input, fileInput, pendingList, errorEl, sendButton } = opts;
  let pending = []; // {name, promise, info|null, li}
  let lastTyping = 0;

  const busy = () => pending.some((p) => !p.info && !p.failed);
  const refreshButton = () => { sendButton.disabled = busy(); };

  fileInput.addEventListener('change', () => {
    const channelId = opts.channelId();
    for (const file of [...fileInput.files]) {
      const li = h('li', { class: 'pending-file' }, h('span', { text: `${file.name} (${formatSize(file.size)}) ` }));
      const status = h('span', { class: 'muted', text: 'uploading…' });
      const item = { name: file.name, info: null, failed: false, li };
      const remove = h('button', {
        type: 'button',
        class: 'link-button',
        text: 'remove',
        on: { click: () => { pending = pending.filter((p) => p !== item); li.remove(); refreshButton(); } },
      });
      li.append(status, remove);
      pendingList.append(li);
      pending.push(item);
      uploadFile(channelId, file).then((info) => {
        item.info = info;
        status.textContent = 'ready';
        li.classList.add('ready');
      }).catch((e) => {
        item.failed = true;
        status.textContent = `upload failed: ${e.message}`;
      }).finally(refreshButton);
    }
    fileInput.value = '';
    refreshButton();
  });

  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  input.addEventListener('input', () => {
    const now = Date.now();
    if (input.value && now - lastTyping > TYPING_EVERY_MS) {
      lastTyping = now;
      opts.onTyping();
    }
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (busy()) return;
    const message = input.value.replace(/\s+$/, '');
    const fileIds = pending.filter((p) => p.info).map((p) => p.info.id);
    if (!message.trim() && fileIds.length === 0) return;
    const channelId = opts.channelId();
    if (!channelId) return;
    const body = { message, client_msg_id: newClientMsgId() };
    const rootId = opts.rootId();
    if (rootId) body.root_id = rootId;
    if (fileIds.length) body.file_ids = fileIds;
    showError(errorEl, '');
    sendButton.disabled = true;
    try {
      const post = await api.post(`/channels/${encodeURIComponent(channelId)}/posts`, body);
      input.value = '';
      lastTyping = 0;
      for (const p of pending) p.li.remove();
      pending = [];
      opts.onPosted(post);
    } catch (e) {
      showError(errorEl, `Not sent: ${e.message}`);
    } finally {
      refreshButton();
    }
  });

  /** Forgets attachments (channel switch: they were uploaded to the old channel). */
  return {
    reset() {
      for (const p of pending) p.li.remove();
      pending = [];
      showError(errorEl, '');
      refreshButton();
    },
  };
}
