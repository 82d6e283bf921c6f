// The host's video clips, in the overlays panel: upload an MP4 (an intro, an outro, a bumper) and play it into
// the program, over the whole canvas or in a tile beside the people on stage; their voices stay on air. The
// playing clip is the scene's `clip` ({url, name, mode} or null), so every host's studio and the program follow
// it; the server takes it off the scene when it has played to its end, and the stage is back. A clip's sound can
// also loop under every slate (the scene's `slateAudio`), so viewers of a "Be right back" hear the show go on.

import { api } from './api.js';
import { h, labelFor, mount, toast } from './dom.js';

function formatSize(bytes) {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

export class ClipsSection {
  /** `onchange(clip)` with the scene's new clip (`null`: stop); `onslateaudio(url)` with the sound under slates (`null`: none). */
  constructor({ onchange, onslateaudio }) {
    this.onchange = onchange;
    this.onslateaudio = onslateaudio;
    this.clip = null;
    this.slateAudio = null;
    this.clips = [];
    this.input = h('input', { type: 'file', accept: 'video/mp4', name: 'clipFile' });
    this.input.onchange = () => this.upload(this.input.files[0]);
    this.error = h('div.form-error', { role: 'alert' });
    this.list = h('div.clip-list');
    this.stop = h('button.secondary', { type: 'button', dataset: { action: 'stop-clip' }, onclick: () => this.onchange(null) }, 'Stop the clip');
    this.el = h(
      'section.panel-section.clips-section',
      h('h3', 'Clips'),
      h('p.field-hint', 'Play an MP4 into the program, over everything or in a tile. People on stage are still heard.'),
      this.list,
      this.stop,
      h('div.field', labelFor(this.input, 'Upload a clip (MP4)'), this.input),
      this.error,
    );
    this.paint();
  }

  async load() {
    try {
      this.clips = (await api.listUploads('clip')) ?? [];
      this.paint();
    } catch (e) {
      this.error.textContent = `Could not load your clips: ${e.message}`;
    }
  }

  async upload(file) {
    if (!file) return;
    this.error.textContent = '';
    try {
      const clip = await api.upload(file);
      this.clips = [clip, ...this.clips.filter((c) => c.sha256 !== clip.sha256)];
      this.paint();
      toast(`${clip.name || 'The clip'} is ready to play.`, 'success');
    } catch (e) {
      // The server says why it cannot play (no video, a codec it cannot decode, too long).
      this.error.textContent = e.message;
    } finally {
      this.input.value = '';
    }
  }

  /** The scene's clip changed (ours or another host's, or it ended); `slateAudio` is the sound under slates. */
  set(clip, slateAudio = this.slateAudio) {
    this.clip = clip ?? null;
    this.slateAudio = slateAudio ?? null;
    this.paint();
  }

  paint() {
    this.stop.hidden = !this.clip;
    if (!this.clips.length) {
      mount(this.list, h('div.dest-empty', 'No clips yet.'));
      return;
    }
    mount(
      this.list,
      this.clips.map((c) => {
        const name = c.name || 'Clip';
        const playing = this.clip?.url === c.url;
        const underSlates = this.slateAudio === c.url;
        const play = (mode) => this.onchange({ url: c.url, name, mode });
        const status = playing ? `Playing ${this.clip.mode === 'tile' ? 'in a tile' : 'full screen'}` : underSlates ? 'Its sound plays under slates' : formatSize(c.size);
        return h(
          'div.clip-item',
          { dataset: { clip: c.sha256, playing: String(playing) } },
          h('div.clip-info', h('div.clip-name', name), h('div.dest-stats', status)),
          h('button.secondary', { type: 'button', dataset: { action: 'play-clip' }, 'aria-label': `Play ${name} full screen`, onclick: () => play('full') }, 'Play'),
          h('button.secondary', { type: 'button', dataset: { action: 'play-clip-tile' }, 'aria-label': `Play ${name} in a tile`, onclick: () => play('tile') }, 'In a tile'),
          h(
            'button.secondary',
            {
              type: 'button',
              dataset: { action: 'slate-audio' },
              'aria-pressed': String(underSlates),
              title: 'Loop its sound under every slate, “Be right back” included',
              'aria-label': `Loop the sound of ${name} under slates`,
              onclick: () => this.onslateaudio(underSlates ? null : c.url),
            },
            'Under slates',
          ),
        );
      }),
    );
  }
}
