// The studio web app: hash-routed pages over /api/v1 (hand-written ES modules, no build step).
import { api, backend, hasToken, mediaBlob, postForm, rememberToken, uploadTrack, trainingEvents } from './api.js';
import { drawLossChart } from './chart.js';
import { resultCard, fillResultCard } from './audio.js';

const $ = (selector, root = document) => root.querySelector(selector);
const state = { dataset: null, events: null, schema: null, trainFormReady: false };

function notice(message, isError = false) {
  const box = $('#notice');
  box.textContent = message;
  box.className = isError ? 'notice error' : 'notice';
  box.hidden = !message;
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text ?? '–';
  row.append(td);
  return td;
}

const fmt = {
  num: (v, digits = 4) => (v === null || v === undefined ? '–' : Number(v).toFixed(digits)),
  bytes: (n) => (n > 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`),
  seconds: (s) => {
    if (s === null || s === undefined) return '–';
    s = Math.round(s);
    return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
  },
};

async function guarded(work) {
  try {
    notice('');
    await work();
  } catch (err) {
    notice(err.message, true);
  }
}

// ---- datasets
async function loadDatasets(select = state.dataset) {
  const { data } = await api('/datasets');
  const picker = $('#dataset-select');
  picker.replaceChildren(...data.map((d) => new Option(`${d.name} (${d.tracks.length} tracks)`, d.name)));
  const trainPicker = $('#train-form [name="dataset"]');
  trainPicker.replaceChildren(...data.map((d) => new Option(d.name, d.name)));
  const chosen = data.find((d) => d.name === select) || data[0];
  state.dataset = chosen ? chosen.name : null;
  $('#dataset-detail').hidden = !chosen;
  if (!chosen) return;
  picker.value = chosen.name;
  trainPicker.value = chosen.name;
  $('#dataset-title').textContent = `Tracks of ${chosen.name}`;
  $('#track-rows').replaceChildren(...chosen.tracks.map((t) => {
    const row = document.createElement('tr');
    cell(row, t.file);
    cell(row, t.prompt);
    cell(row, t.duration_seconds ? `${t.duration_seconds.toFixed(1)} s` : '–');
    cell(row, t.sample_rate ? `${t.sample_rate} Hz` : '–');
    cell(row, fmt.bytes(t.size));
    return row;
  }));
}

async function uploadFiles(files) {
  if (!state.dataset) return notice('error: create a dataset first', true);
  const prompt = $('#upload-prompt').value.trim();
  const list = $('#upload-list');
  const jobs = [...files].map((file) => {
    const item = document.createElement('li');
    item.dataset.file = file.name;
    const name = document.createElement('span');
    name.textContent = file.name;
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.value = 0;
    const status = document.createElement('span');
    status.className = 'upload-status muted';
    status.textContent = 'waiting';
    item.append(name, bar, status);
    list.prepend(item);
    return { file, item, bar, status };
  });
  for (const job of jobs) {  // one at a time: honest per-file progress on a slow link
    job.status.textContent = 'uploading';
    try {
      await uploadTrack(state.dataset, job.file, prompt, (fraction) => { job.bar.value = fraction; });
      job.bar.value = 1;
      job.item.classList.add('ok');
      job.status.textContent = 'stored';
    } catch (err) {
      job.item.classList.add('failed');
      job.status.className = 'upload-status error';
      job.status.textContent = err.message;
    }
  }
  await loadDatasets(state.dataset);
}

function setupDatasets() {
  $('#dataset-create').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = event.target.elements.name.value.trim();
    guarded(async () => {
      await api('/datasets', { method: 'POST', body: { name } });
      event.target.reset();
      await loadDatasets(name);
    });
  });
  $('#dataset-select').addEventListener('change', (e) => guarded(() => loadDatasets(e.target.value)));
  $('#dataset-delete').addEventListener('click', () => guarded(async () => {
    if (!state.dataset || !confirm(`Delete dataset ${state.dataset} and all its tracks?`)) return;
    await api(`/datasets/${encodeURIComponent(state.dataset)}`, { method: 'DELETE' });
    await loadDatasets(null);
  }));
  const zone = $('#dropzone');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    uploadFiles(e.dataTransfer.files);
  });
  $('#file-input').addEventListener('change', (e) => {
    uploadFiles(e.target.files);
    e.target.value = '';
  });
}

// ---- trainings
function setPath(target, path, value) {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) node = node[part] ??= {};
  node[parts.at(-1)] = value;
}

function getPath(source, path) {
  return path.split('.').reduce((node, part) => (node == null ? undefined : node[part]), source);
}

async function loadTrainForm() {
  const form = $('#train-form');
  if (state.trainFormReady) return;
  const defaults = await api('/trainings/defaults');
  form.base_model.value = defaults.base_model;
  for (const input of form.querySelectorAll('[name*="."]')) {
    const value = getPath(defaults.recipe, input.name);
    if (value !== undefined && value !== null) input.value = value;
  }
  const formats = state.schema.components.schemas.TrainingRecipe.properties.export_formats.items.enum;
  $('#format-boxes').replaceChildren(...formats.map((name) => {
    const label = document.createElement('label');
    label.className = 'check';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.name = 'export_formats';
    box.value = name;
    box.checked = defaults.recipe.export_formats.includes(name);
    label.append(box, ` ${name}`);
    return label;
  }));
  state.trainFormReady = true;
}

async function loadTrainings() {
  const { data } = await api('/trainings');
  $('#training-rows').replaceChildren(...data.map((t) => {
    const row = document.createElement('tr');
    const link = document.createElement('a');
    link.href = `#training/${t.id}`;
    link.textContent = t.id;
    cell(row, '').append(link);
    cell(row, t.dataset);
    cell(row, t.state);
    cell(row, t.progress ? `${Math.round(100 * Math.min(1, t.progress.step / Math.max(1, t.progress.total_steps)))} %` : '–');
    cell(row, fmt.num(t.progress?.loss));
    return row;
  }));
}

function setupTrainForm() {
  $('#train-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const body = { dataset: form.elements.dataset.value, base_model: form.base_model.value.trim() };
    if (form.model_id.value.trim()) body.model_id = form.model_id.value.trim();
    for (const input of form.querySelectorAll('[name*="."]')) {
      if (input.value === '') continue;
      setPath(body, input.name, input.type === 'number' ? Number(input.value) : input.value);
    }
    body.export_formats = [...form.querySelectorAll('[name="export_formats"]:checked')].map((b) => b.value);
    const prompts = form.sample_prompts.value.split('\n').map((line) => line.trim()).filter(Boolean);
    if (prompts.length) setPath(body, 'training.sample_prompts', prompts);
    guarded(async () => {
      const training = await api('/trainings', { method: 'POST', body });
      location.hash = `#training/${training.id}`;
    });
  });
}

function showTraining(t) {
  $('#t-id').textContent = t.id;
  const badge = $('#t-state');
  badge.textContent = t.state;
  badge.dataset.state = t.state;
  const p = t.progress;
  $('#t-progress').value = p ? Math.round(100 * Math.min(1, p.step / Math.max(1, p.total_steps))) : 0;
  $('#t-phase').textContent = p?.phase ?? t.state;
  $('#t-epoch').textContent = p ? `${p.epoch.toFixed(2)} / ${p.total_epochs}` : '–';
  $('#t-step').textContent = p ? `${p.step} / ${p.total_steps}` : '–';
  $('#t-loss').textContent = fmt.num(p?.loss);
  $('#t-val').textContent = fmt.num(p?.val_loss);
  $('#t-eta').textContent = t.state === 'running' ? fmt.seconds(p?.eta_seconds) : '–';
  $('#t-message').textContent = p?.message ?? '';
  $('#t-error').hidden = !t.error || t.state === 'cancelled';
  $('#t-error').textContent = t.error ?? '';
  $('#t-cancel').hidden = !['queued', 'running'].includes(t.state);
  const done = t.state === 'completed';
  $('#t-generate').hidden = !done;
  $('#t-generate').href = `#generate/${t.model_id}`;
  drawLossChart($('#loss-chart'), t.points);
  showSamples(t);
}

// Checkpoint samples: one group per checkpoint (newest first), a player per prompt. Players already shown
// stay (a playing clip is not interrupted); clips of rotated-away checkpoints disappear.
function showSamples(t) {
  const samples = t.progress?.samples ?? [];
  const box = $('#t-samples');
  const keys = new Set(samples.map((s) => `${t.id}/${s.step}/${s.index}`));
  for (const item of box.querySelectorAll('.sample')) {
    if (keys.has(item.dataset.key)) continue;
    const audio = item.querySelector('audio');
    if (audio.src) URL.revokeObjectURL(audio.src);
    item.remove();
  }
  for (const group of box.querySelectorAll('.sample-step')) if (!group.querySelector('.sample')) group.remove();
  for (const s of samples) {
    const key = `${t.id}/${s.step}/${s.index}`;
    if ([...box.querySelectorAll('.sample')].some((item) => item.dataset.key === key)) continue;
    let group = box.querySelector(`.sample-step[data-step="${s.step}"]`);
    if (!group) {
      group = document.createElement('div');
      group.className = 'sample-step';
      group.dataset.step = s.step;
      const heading = document.createElement('h4');
      heading.textContent = `Step ${s.step}`;
      group.append(heading);
      const later = [...box.querySelectorAll('.sample-step')].find((g) => Number(g.dataset.step) < s.step);
      box.insertBefore(group, later ?? null);
    }
    const item = document.createElement('figure');
    item.className = 'sample';
    item.dataset.key = key;
    const caption = document.createElement('figcaption');
    caption.textContent = `${s.prompt} · seed ${s.seed}`;
    const audio = document.createElement('audio');
    audio.controls = true;
    audio.preload = 'auto';
    item.append(caption, audio);
    group.append(item);
    mediaBlob(`/api/v1/trainings/${encodeURIComponent(t.id)}/samples/${s.step}/${s.index}`)
      .then((blob) => { audio.src = URL.createObjectURL(blob); })
      .catch((err) => { caption.textContent += ` (${err.message})`; });
  }
  $('#t-samples-card').hidden = samples.length === 0;
}

async function openTraining(trainingId) {
  state.events?.close();
  const first = await api(`/trainings/${encodeURIComponent(trainingId)}`);
  showTraining(first);
  state.events = trainingEvents(trainingId, showTraining, () => { state.events = null; });
  $('#t-cancel').onclick = () => guarded(async () => showTraining(
    await api(`/trainings/${encodeURIComponent(trainingId)}/cancel`, { method: 'POST' })));
}

// ---- models
async function loadModels() {
  const { data } = await api('/models');
  $('#model-rows').replaceChildren(...data.map((m) => {
    const row = document.createElement('tr');
    row.dataset.model = m.model_id;
    cell(row, m.model_id);
    cell(row, m.base_model);
    cell(row, m.formats.join(', '));
    cell(row, fmt.num(m.training.final_loss));
    cell(row, fmt.num(m.training.validation_loss));
    cell(row, fmt.num(m.training.base_validation_loss));
    cell(row, fmt.bytes(m.size));
    cell(row, new Date(m.created).toLocaleString());
    const actions = cell(row, '');
    const use = document.createElement('a');
    use.href = `#generate/${m.model_id}`;
    use.className = 'button';
    use.textContent = 'Generate';
    const remove = document.createElement('button');
    remove.className = 'danger';
    remove.textContent = 'Delete';
    remove.onclick = () => guarded(async () => {
      if (!confirm(`Delete model ${m.model_id}?`)) return;
      await api(`/models/${encodeURIComponent(m.model_id)}`, { method: 'DELETE' });
      await loadModels();
    });
    actions.append(use, ' ', remove);
    return row;
  }));
  return data;
}

// ---- generate
async function loadGenerateForm(modelId) {
  const models = await loadModels();
  const form = $('#generate-form');
  const base = $('#train-form').base_model.value || 'facebook/musicgen-small';
  const option = (label, value, baseModel) => Object.assign(new Option(label, value), { title: baseModel });
  const options = models.map((m) => option(`${m.model_id} (fine-tuned on ${m.base_model})`, m.model_id, m.base_model));
  const bases = [...new Set([...models.map((m) => m.base_model), base])];
  // On Kubernetes a base model alone renders only as the A/B twin of a TrainedModel's clip.
  if (backend !== 'kubernetes') options.push(...bases.map((b) => option(`${b} (base model)`, `base:${b}`, b)));
  form.model.replaceChildren(...options);
  if (modelId) form.model.value = modelId;
  showAudioInputs(form);
  const params = state.schema.components.schemas.GenerationParameters.properties;
  for (const name of ['key', 'scale', 'decoder']) {
    const select = form[name];
    if (select.options.length > 1) continue;
    const values = params[name].anyOf.find((a) => a.enum).enum.filter((v) => v !== 'encodec');
    select.append(...values.map((v) => new Option(v === 'mbd' ? 'mbd (MultiBand Diffusion)' : v, v)));
  }
  if (!form.output_format.options.length) {
    const formats = params.output_format.enum;
    form.output_format.append(...formats.map((v) => new Option(v, v)));
    form.output_format.value = params.output_format.default;
  }
}

async function pollGeneration(card, generationId) {
  for (;;) {
    const generation = await api(`/generations/${encodeURIComponent(generationId)}`);
    await fillResultCard(card, generation);
    if (['completed', 'failed'].includes(generation.state)) return generation;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

// Melody models follow a melody; the others continue a clip (a melody model takes no audio prompt).
function showAudioInputs(form) {
  const melody = /melody/i.test(form.model.selectedOptions[0]?.title || '');
  $('#g-melody').hidden = !melody;
  $('#g-audio-prompt').hidden = melody;
}

// The generation request, as JSON, or multipart with the chosen audio files.
function submitGeneration(form, body) {
  const files = ['audio_prompt', 'melody']
    .filter((name) => !form[name].closest('label').hidden && form[name].files.length);
  if (!files.length) return api('/generations', { method: 'POST', body });
  const data = new FormData();
  data.append('request', JSON.stringify(body));  // a text field: a Blob would arrive as a file
  for (const name of files) data.append(name, form[name].files[0], form[name].files[0].name);
  return postForm('/generations/upload', data);
}

// Deletes the generation, its A/B twin, their audio and uploaded inputs (the studio refuses while running).
function deleteGenerationButton(generation, pair) {
  const remove = document.createElement('button');
  remove.className = 'danger delete-generation';
  remove.type = 'button';
  remove.textContent = 'Delete';
  remove.title = 'Delete this generation, its A/B twin, their audio and uploaded clips';
  remove.onclick = () => guarded(async () => {
    if (!confirm('Delete this generation and its audio?')) return;
    await api(`/generations/${encodeURIComponent(generation.id)}`, { method: 'DELETE' });
    pair.remove();
  });
  return remove;
}

function setupGenerateForm() {
  $('#generate-form').model.addEventListener('change', (event) => showAudioInputs(event.target.form));
  $('#generate-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.target;
    const parameters = { prompt: form.prompt.value.trim() };
    for (const name of ['duration_seconds', 'target_bpm', 'temperature', 'random_seed']) {
      if (form[name].value !== '') parameters[name] = Number(form[name].value);
    }
    for (const name of ['key', 'scale', 'style', 'decoder', 'output_format']) {
      if (form[name].value) parameters[name] = form[name].value;
    }
    const chosen = form.model.value;
    const body = chosen.startsWith('base:')
      ? { base_model: chosen.slice(5), parameters }
      : { model_id: chosen, parameters, compare_with_base: form.compare_with_base.checked };
    guarded(async () => {
      const status = $('#generate-status');
      status.textContent = 'generating…';
      const generation = await submitGeneration(form, body);
      const pair = document.createElement('div');
      pair.className = 'pair';
      const main = resultCard(generation.is_base ? 'Base' : 'Fine-tuned', generation);
      main.append(deleteGenerationButton(generation, pair));
      pair.append(main);
      const waits = [pollGeneration(main, generation.id)];
      if (generation.compare_id) {
        const other = await api(`/generations/${generation.compare_id}`);
        const card = resultCard('Base (A/B, same seed)', other);
        pair.append(card);
        waits.push(pollGeneration(card, other.id));
      }
      $('#results').prepend(pair);
      await Promise.all(waits);
      status.textContent = `done: seed ${generation.parameters.random_seed}`;
    });
  });
}

// ---- routing
async function route() {
  const [page, arg] = location.hash.replace(/^#/, '').split('/');
  const name = ['datasets', 'train', 'training', 'models', 'generate'].includes(page) ? page : 'datasets';
  for (const section of document.querySelectorAll('.page')) section.hidden = section.id !== `page-${name}`;
  for (const link of document.querySelectorAll('nav a')) {
    link.classList.toggle('active', link.dataset.page === (name === 'training' ? 'train' : name));
  }
  if (name !== 'training') { state.events?.close(); state.events = null; }
  await guarded(async () => {
    if (name === 'datasets') await loadDatasets();
    if (name === 'train') { await loadDatasets(); await loadTrainForm(); await loadTrainings(); }
    if (name === 'training') await openTraining(arg);
    if (name === 'models') await loadModels();
    if (name === 'generate') { await loadTrainForm(); await loadGenerateForm(arg); }
  });
}

function askForToken() {
  // Kubernetes backend: the studio acts with the user's own token (RBAC decides), so ask for it.
  const form = $('#token-form');
  form.hidden = false;
  for (const section of document.querySelectorAll('.page')) section.hidden = true;
  return new Promise((resolve) => {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (rememberToken(form.elements.token.value)) {
        form.hidden = true;
        resolve();
      }
    });
  });
}

async function start() {
  if (!hasToken()) await askForToken();
  state.schema = await (await fetch('/api/v1/openapi.json')).json();
  setupDatasets();
  setupTrainForm();
  setupGenerateForm();
  window.addEventListener('hashchange', route);
  await route();
  document.body.dataset.ready = '1';
}

start();
