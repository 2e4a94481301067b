// The studio's API client: the token, JSON calls, uploads with per-file progress, SSE, media.
// Local backend: the page carries the studio's token. Kubernetes backend: the user's own Kubernetes token,
// kept in this tab's sessionStorage and sent as a Bearer token on every call (the studio acts as them).
const TOKEN_KEY = 'musicgen-studio-kubernetes-token';
export const backend = document.querySelector('meta[name="studio-backend"]').content;
// Files at least this large go straight to S3/Azure through a presigned URL (0: never).
const directUploadBytes = Number(document.querySelector('meta[name="studio-direct-upload-bytes"]')?.content || 0);
const pageToken = document.querySelector('meta[name="studio-token"]').content;
const headers = {};

export function hasToken() {
  const token = pageToken || sessionStorage.getItem(TOKEN_KEY) || '';
  if (token) headers.Authorization = `Bearer ${token}`;
  return Boolean(token);
}

export function rememberToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
  return hasToken();
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function detailOf(status, body) {
  if (body && typeof body.detail === 'string') return body.detail;
  if (body && body.detail) return JSON.stringify(body.detail);
  return `error: HTTP ${status}`;
}

export async function api(path, { method = 'GET', body } = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return answerOf(await fetch(`/api/v1${path}`, init));
}

// A multipart POST (FormData: the browser streams the files and sets the boundary).
export async function postForm(path, form) {
  return answerOf(await fetch(`/api/v1${path}`, { method: 'POST', headers: { ...headers }, body: form }));
}

async function answerOf(response) {
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new ApiError(response.status, detailOf(response.status, data));
  return data;
}

// Upload one file: large ones PUT straight to storage when the studio offers it, the rest multipart.
export async function uploadTrack(dataset, file, prompt, onProgress) {
  if (directUploadBytes > 0 && file.size >= directUploadBytes) {
    const path = `/datasets/${encodeURIComponent(dataset)}/uploads`;
    let upload = null;
    try {
      upload = await api(path, { method: 'POST', body: { filename: file.name, size: file.size } });
    } catch (err) {
      if (err.status !== 501) throw err;  // 501: the artifact store presigns nothing: multipart below
    }
    if (upload) {
      try {
        await putFile(upload, file, onProgress);
        return await api(`${path}/${upload.upload_id}/complete`, { method: 'POST', body: { prompt } });
      } catch (err) {
        // Storage unreachable from this browser, or no bucket CORS rule: send it through the studio.
        if (err.status !== 0) throw err;
        console.warn(`direct upload of ${file.name} failed (${err.message}); uploading through the studio`);
        onProgress(0);
      }
    }
  }
  return uploadMultipart(dataset, file, prompt, onProgress);
}

// PUT the file's bytes to a presigned URL (no studio token: the URL carries its own signature).
function putFile(upload, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(upload.method, upload.url);
    for (const [name, value] of Object.entries(upload.headers)) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) resolve();
      else reject(new ApiError(request.status, `error: storage refused the upload (HTTP ${request.status})`));
    };
    request.onerror = () => reject(new ApiError(0,
      'error: the upload to storage failed (interrupted, or the bucket has no CORS rule for this site)'));
    request.send(file);
  });
}

// One file as multipart, streamed by the browser; onProgress(fraction) while the bytes go out.
function uploadMultipart(dataset, file, prompt, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    if (prompt) form.append('prompt', prompt);
    form.append('file', file, file.name);
    const request = new XMLHttpRequest();
    request.open('POST', `/api/v1/datasets/${encodeURIComponent(dataset)}/tracks`);
    request.setRequestHeader('Authorization', headers.Authorization);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      let data = null;
      try { data = JSON.parse(request.responseText); } catch { data = null; }
      if (request.status >= 200 && request.status < 300) resolve(data);
      else reject(new ApiError(request.status, detailOf(request.status, data)));
    };
    request.onerror = () => reject(new ApiError(0, 'error: the upload was interrupted'));
    request.send(form);
  });
}

// Server-Sent Events of a training, read with fetch so the Authorization header goes along.
export function trainingEvents(trainingId, onTraining, onEnd) {
  const controller = new AbortController();
  (async () => {
    try {
      const response = await fetch(`/api/v1/trainings/${encodeURIComponent(trainingId)}/events`,
        { headers, signal: controller.signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (type === 'training' && data) onTraining(JSON.parse(data));
        }
      }
    } catch (err) {
      if (err.name !== 'AbortError') throw err;
    } finally {
      onEnd();
    }
  })();
  return { close: () => controller.abort() };
}

// A media file (audio, spectrogram) fetched with the token: the Blob (for an object URL) of its bytes.
export async function mediaBlob(path) {
  const response = await fetch(path, { headers });
  if (!response.ok) throw new ApiError(response.status, `error: ${path}: HTTP ${response.status}`);
  return response.blob();
}
