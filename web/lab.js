// The fault lab panel: asks the server to break this page's own connections the way
// real networks and proxies do (src/lab/, docs/reliability.md), and the panes show
// how each technique copes.
//
// The server knows this page's connections by its wire-tap id (tap= on every
// request, see wire-tap.js): a fault set under it touches only them, unless
// "everyone" is ticked. Only the tab that holds the connections (connections.js)
// has that id, so the panel works there.

import { t, translate } from './i18n.js';
import { LADDER } from './transports/auto.js';

const $ = (selector) => document.querySelector(selector);
const NUMBERS = ['buffer_bytes', 'idle_cut_s', 'delay_ms', 'bytes_per_s'];

/** `connections` gives the page's lab id (labId()) and room. */
export function setupLab(connections) {
  const form = $('#lab-form');
  const select = $('#lab-transport');
  // The transports whose connections the server holds over TCP (not WebTransport):
  // the automatic client's ladder. Its own connections meet the same faults.
  for (const { kind } of LADDER) {
    const option = translate(document.createElement('option'), `name.${kind}`);
    option.value = kind;
    select.append(option);
  }

  const status = (key, params = {}, isError = false) => {
    translate($('#lab-status'), key, params);
    $('#lab-status').classList.toggle('error', isError);
  };

  async function call(method, path, body) {
    const id = connections.labId();
    if (!id) {
      status('lab.noId', {}, true);
      return null;
    }
    const everyone = form.elements.everyone.checked ? '?everyone=true' : '';
    const query = path.includes('?') ? everyone.replace('?', '&') : everyone;
    try {
      const response = await fetch(`/api/lab/${id}${path}${query}`, {
        method,
        headers: body ? { 'Content-Type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        status('lab.error', { error: answer.error ?? `HTTP ${response.status}` }, true);
        return null;
      }
      return answer;
    } catch {
      status('lab.network', {}, true);
      return null;
    }
  }

  // Opened: say whether the server has the lab on (--fault-lab) and what is set.
  $('#lab').addEventListener('toggle', async () => {
    if (!$('#lab').open) return;
    const answer = await call('GET', '');
    if (answer) status('lab.ready', { set: Object.keys(answer.page).length + Object.keys(answer.everyone).length });
  });

  const kind = () => select.value;
  const name = () => t(`name.${kind()}`);

  form.addEventListener('click', async (event) => {
    const action = event.target.closest('[data-lab]')?.dataset.lab;
    if (action === 'cut' && (await call('POST', `/${kind()}/cut`))) status('lab.didCut', { name: name() });
    if (action === 'restart' && (await call('POST', `/restart?room=${encodeURIComponent(connections.room)}`))) {
      status('lab.didRestart', { room: connections.room });
    }
    if (action === 'clear' && (await call('DELETE', ''))) status('lab.didClear');
  });

  // Apply: the faults of the chosen transport, as the fields say (0 is off).
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const faults = {};
    if (form.elements.blocked.checked) faults.blocked = true;
    for (const field of NUMBERS) {
      const value = Number(form.elements[field].value);
      if (value > 0) faults[field] = value;
    }
    if (await call('PUT', `/${kind()}`, faults)) {
      const keys = Object.keys(faults);
      status(keys.length ? 'lab.didSet' : 'lab.didClearOne', { name: name(), faults: keys.join(', ') });
    }
  });
}
