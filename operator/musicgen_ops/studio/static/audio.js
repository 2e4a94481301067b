// A generated clip: player, waveform (drawn from the decoded audio), spectrogram, download.
import { mediaBlob } from './api.js';

export async function drawWaveform(canvas, blob) {
  const buffer = await blob.arrayBuffer();
  const context = new OfflineAudioContext(1, 1, 44100);
  const audio = await context.decodeAudioData(buffer);
  const samples = audio.getChannelData(0);
  const g = canvas.getContext('2d');
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  g.fillStyle = getComputedStyle(canvas).color;
  const per = Math.max(1, Math.floor(samples.length / width));
  let peak = 1e-6;  // scale to the clip's own peak, so a quiet clip still shows its shape
  for (const v of samples) peak = Math.max(peak, Math.abs(v));
  for (let x = 0; x < width; x++) {
    let lo = 1, hi = -1;
    for (let i = x * per; i < Math.min(samples.length, (x + 1) * per); i++) {
      lo = Math.min(lo, samples[i]);
      hi = Math.max(hi, samples[i]);
    }
    if (hi < lo) continue;
    const top = ((1 - hi / peak) / 2) * height, bottom = ((1 - lo / peak) / 2) * height;
    g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

export function resultCard(title, generation) {
  const card = document.createElement('article');
  card.className = 'card result';
  card.dataset.generation = generation.id;
  const heading = document.createElement('h3');
  heading.textContent = `${title} — ${generation.model}`;
  card.append(heading);
  const status = document.createElement('p');
  status.className = 'muted';
  status.textContent = generation.state;
  card.append(status);
  return card;
}

export async function fillResultCard(card, generation) {
  const status = card.querySelector('p');
  if (generation.state === 'failed') {
    status.className = 'error';
    status.textContent = generation.error;
    return;
  }
  if (generation.state !== 'completed') {
    status.textContent = generation.state;
    return;
  }
  const r = generation.result;  // absent on the Kubernetes backend: the request's parameters stand in
  const seed = r ? r.seed : generation.parameters.random_seed;
  status.textContent = r
    ? `${r.duration_seconds.toFixed(2)} s · seed ${seed} · ${r.wall_seconds.toFixed(1)} s to make`
    : `${generation.parameters.duration_seconds} s · seed ${seed}`;
  const audioBlob = await mediaBlob(generation.audio_url);
  const audioUrl = URL.createObjectURL(audioBlob);
  const player = document.createElement('audio');
  player.controls = true;
  player.preload = 'auto';
  player.src = audioUrl;
  const wave = document.createElement('canvas');
  wave.className = 'waveform';
  wave.width = 600;
  wave.height = 80;
  card.append(player, wave);
  if (generation.spectrogram_url) {
    const image = document.createElement('img');
    image.className = 'spectrogram';
    image.alt = 'spectrogram';
    image.src = URL.createObjectURL(await mediaBlob(generation.spectrogram_url));
    card.append(image);
  }
  const download = document.createElement('a');
  download.href = audioUrl;
  download.download = `${generation.id}.${generation.parameters.output_format}`;
  download.textContent = 'Download';
  download.className = 'button';
  if (r) {
    const conditioning = document.createElement('p');
    conditioning.className = 'muted';
    const inputs = [
      generation.parameters.audio_prompt_uri && 'continues the uploaded clip',
      generation.parameters.melody_uri && 'follows the uploaded melody',
    ].filter(Boolean);
    conditioning.textContent = [`conditioned on: ${r.conditioning_text}`, ...inputs].join(' · ');
    card.append(conditioning);
  }
  card.append(download);
  await drawWaveform(wave, audioBlob).catch(() => wave.remove());
}
