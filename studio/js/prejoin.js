// The green room shown before entering a studio: camera preview, device pickers, a mic meter, and (for guests)
// the display name. Starts the local media that the room then publishes.

import { h, icon, labelFor, mount } from './dom.js';
import { ICONS } from './icons.js';
import { LevelMeter } from './media.js';

/** A <select> of devices of one kind, keeping `current` selected. */
export function deviceSelect(devices, current, label, onchange) {
  const select = h(
    'select',
    { 'aria-label': label, onchange: (e) => onchange(e.target.value) },
    devices.length ? null : h('option', { value: '' }, `No ${label.toLowerCase()} found`),
    devices.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `${label} ${i + 1}`)),
  );
  return select;
}

/**
 * Renders the green room into `root`. Resolves with {name} when the user clicks the button.
 * Options: title (broadcast title), askName (guest), defaultName, button label, media (LocalMedia).
 */
export function greenRoom(root, { title, subtitle, askName, defaultName = '', button, media }) {
  return new Promise((resolve) => {
    const video = h('video.preview-video', { autoplay: true, playsInline: true, muted: true });
    const meterBar = h('div.meter-bar');
    const meter = new LevelMeter();
    media.meter = meter;
    const errors = h('div.form-error', { role: 'alert' });
    const nameInput = askName
      ? h('input', { type: 'text', name: 'name', placeholder: 'Your name', value: defaultName, maxLength: 60, required: true, autocomplete: 'name' })
      : null;
    const camSelect = h('div.field');
    const micSelect = h('div.field');
    const micBtn = h('button.round-btn', { type: 'button', title: 'Microphone', dataset: { action: 'toggle-mic' } });
    const camBtn = h('button.round-btn', { type: 'button', title: 'Camera', dataset: { action: 'toggle-camera' } });
    // Enabled once the camera and mic have started (or failed), so the studio publishes real tracks from the start.
    const submit = h('button.primary.big', { type: 'submit', disabled: true, dataset: { action: 'enter-studio' } }, 'Starting camera…');
    let raf = 0;

    const paintButtons = () => {
      mount(micBtn, icon(media.audioEnabled ? ICONS.mic : ICONS.micOff));
      mount(camBtn, icon(media.videoEnabled ? ICONS.cam : ICONS.camOff));
      micBtn.classList.toggle('off', !media.audioEnabled);
      camBtn.classList.toggle('off', !media.videoEnabled);
      video.hidden = !media.videoEnabled || !media.camera;
    };
    micBtn.onclick = () => {
      media.setAudioEnabled(!media.audioEnabled);
      paintButtons();
    };
    camBtn.onclick = () => {
      media.setVideoEnabled(!media.videoEnabled);
      paintButtons();
    };

    const paintDevices = async () => {
      const list = await media.devices();
      mount(
        camSelect,
        h('label', 'Camera'),
        deviceSelect(list.videoinput, media.camera?.getSettings().deviceId, 'Camera', (id) =>
          media.useCamera(id).catch((e) => (errors.textContent = e.message)),
        ),
      );
      mount(
        micSelect,
        h('label', 'Microphone'),
        deviceSelect(list.audioinput, media.audio?.getSettings().deviceId, 'Microphone', (id) =>
          media.useMicrophone(id).catch((e) => (errors.textContent = e.message)),
        ),
        h('div.meter', meterBar),
      );
    };

    const tick = () => {
      meterBar.style.width = `${Math.round(meter.level() * 100)}%`;
      raf = requestAnimationFrame(tick);
    };

    const form = h(
      'form.greenroom-form',
      {
        onsubmit: (e) => {
          e.preventDefault();
          const name = nameInput?.value.trim();
          if (nameInput && !name) {
            errors.textContent = 'Enter the name others will see.';
            nameInput.focus();
            return;
          }
          cancelAnimationFrame(raf);
          submit.disabled = true;
          resolve({ name, setError: (msg) => ((errors.textContent = msg), (submit.disabled = false)) });
        },
      },
      h('h1', title),
      subtitle ? h('p.muted', subtitle) : null,
      nameInput ? h('div.field', labelFor(nameInput, 'Display name'), nameInput) : null,
      camSelect,
      micSelect,
      errors,
      submit,
    );

    mount(
      root,
      h(
        'div.greenroom',
        h('div.brand-corner', h('span.brand-dot'), 'Backyard'),
        h(
          'div.greenroom-card',
          h('div.preview', video, h('div.preview-off', 'Camera is off'), h('div.preview-controls', micBtn, camBtn)),
          form,
        ),
      ),
    );

    media.start().then(async (errs) => {
      errors.textContent = [errs.video, errs.audio].filter(Boolean).join(' ');
      video.srcObject = media.preview;
      meter.attach(media.audio);
      paintButtons();
      submit.disabled = false;
      submit.textContent = button;
      await paintDevices();
      raf = requestAnimationFrame(tick);
      (nameInput ?? submit).focus();
    });
    media.on('change', () => {
      video.srcObject = media.preview;
      paintButtons();
    });
    paintButtons();
  });
}
