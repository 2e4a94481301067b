// The studio's API client: the token from the page, JSON calls, uploads with per-file progress.
const token = document.querySelector('meta[name="studio-token"]').content;
const headers = { Authorization: `Bearer ${token}` };

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
  const response = await fetch(`/api/v1${path}`, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, detailOf(response.status, data));
  return data;
}

// Upload one file (multipart, streamed by the browser); onProgress(fraction) while the bytes go out.
export function uploadTrack(dataset, file, prompt, onProgress) {
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

// Server-Sent Events of a training (the session cookie authorises this GET).
export function trainingEvents(trainingId, onTraining, onEnd) {
  const source = new EventSource(`/api/v1/trainings/${encodeURIComponent(trainingId)}/events`);
  source.addEventListener('training', (event) => onTraining(JSON.parse(event.data)));
  source.addEventListener('end', () => { source.close(); onEnd(); });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) onEnd(); };
  return source;
}
