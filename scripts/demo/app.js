// The calsync demo: one page, no framework. Talks to the gateway as a signed-in user and to the
// Calendly simulator's control API as "the outside world" (invitees booking and canceling).
(() => {
  'use strict';
  const demo = window.CALSYNC_DEMO;
  const $ = (id) => document.getElementById(id);
  const status = (message) => ($('status').textContent = message);
  let current = null;
  let pollTimer = null;
  let lastMeetings = null;

  async function gateway(path, options = {}) {
    const response = await fetch(`${demo.gateway}${path}`, {
      ...options,
      headers: {
        authorization: `Bearer ${current.token}`,
        accept: 'application/json',
        ...(options.body ? { 'content-type': 'application/json' } : {}),
        ...options.headers,
      },
    });
    const body = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new Error(body?.message ?? `${response.status} ${response.statusText}`);
    return body;
  }

  async function simulator(path, method, body) {
    const response = await fetch(`${demo.simulator}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const result = await response.json().catch(() => null);
    if (!response.ok) throw new Error(result?.message ?? `${response.status} ${response.statusText}`);
    return result;
  }

  function fact(term, value, pill) {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    if (pill) {
      const span = document.createElement('span');
      span.className = `pill ${String(value).toLowerCase()}`;
      span.textContent = value;
      dd.append(span);
    } else dd.textContent = value;
    return [dt, dd];
  }

  async function refreshConnection() {
    const list = $('connection');
    try {
      const connection = await gateway('/api/calendly/connection');
      const rows = [fact('Connected', connection.connected ? 'yes' : 'no')];
      if (connection.connected) {
        rows.push(fact('Calendly user', connection.calendlyUserUri ?? ''));
        if (connection.kind) rows.push(fact('Connected with', connection.kind));
        if (connection.state) rows.push(fact('Connection state', connection.state, true));
        rows.push(fact('Webhook', connection.webhook?.state ?? 'none', true));
      }
      list.replaceChildren(...rows.flat());
      $('disconnect').disabled = !connection.connected;
      $('connect-oauth').disabled = connection.connected;
    } catch (error) {
      list.replaceChildren(...fact('Error', error.message));
    }
  }

  function when(meeting) {
    const start = meeting.startTime ?? meeting.start_time;
    return start ? new Date(start).toLocaleString() : '';
  }

  function inviteeCell(invitee) {
    const wrapper = document.createElement('div');
    const label = document.createElement('span');
    const canceled = String(invitee.status).toLowerCase().includes('cancel');
    label.textContent = `${invitee.name} <${invitee.email}>${invitee.noShow ? ' (no-show)' : ''}${
      invitee.rescheduled ? ' (rescheduled)' : ''
    }`;
    if (canceled) label.className = 'canceled';
    wrapper.append(label);
    if (!canceled) {
      const action = (text, handler) => {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = text;
        button.setAttribute('aria-label', `${text} ${invitee.name}`);
        button.addEventListener('click', () => handler().then(refreshMeetings, (error) => status(error.message)));
        wrapper.append(' ', button);
      };
      action('Cancel', () =>
        simulator('/_sim/invitees/cancel', 'POST', {
          invitee: invitee.uri,
          reason: 'Canceled from the demo',
          canceler_type: 'invitee',
        }).then(() => status(`Canceled ${invitee.name}'s booking at Calendly; waiting for the webhook...`)),
      );
      action('Reschedule +1 day', () => {
        const meeting = invitee.meeting;
        const start = new Date(new Date(meeting.startTime ?? meeting.start_time).getTime() + 86_400_000);
        const end = new Date(start.getTime() + 30 * 60_000);
        return simulator('/_sim/invitees/reschedule', 'POST', {
          invitee: invitee.uri,
          start_time: start.toISOString(),
          end_time: end.toISOString(),
        }).then(() => status(`Rescheduled ${invitee.name}; waiting for the webhooks...`));
      });
      action(invitee.noShow ? 'Undo no-show' : 'Mark no-show', () =>
        simulator('/_sim/invitees/no_show', invitee.noShow ? 'DELETE' : 'POST', { invitee: invitee.uri }),
      );
    }
    return wrapper;
  }

  async function refreshMeetings() {
    if (!current) return;
    try {
      const page = await gateway('/api/meetings?limit=50');
      const meetings = page.meetings ?? [];
      // Once a webhook has changed what the user sees, stop saying we are waiting for it.
      const signature = JSON.stringify(meetings);
      if (signature !== lastMeetings && $('status').textContent.includes('waiting for the webhook')) {
        status('Webhook received: meetings updated.');
      }
      lastMeetings = signature;
      const body = $('meetings');
      if (meetings.length === 0) {
        const row = document.createElement('tr');
        row.innerHTML = '<td colspan="4">No meetings yet.</td>';
        body.replaceChildren(row);
        return;
      }
      body.replaceChildren(
        ...meetings.map((meeting) => {
          const row = document.createElement('tr');
          const cells = [when(meeting), meeting.name ?? '', String(meeting.status ?? '').toLowerCase()];
          for (const text of cells) {
            const cell = document.createElement('td');
            cell.textContent = text;
            row.append(cell);
          }
          if (cells[2].includes('cancel')) row.className = 'canceled';
          const invitees = document.createElement('td');
          for (const invitee of meeting.invitees ?? []) invitees.append(inviteeCell({ ...invitee, meeting }));
          row.append(invitees);
          return row;
        }),
      );
    } catch (error) {
      status(error.message);
    }
  }

  function selectUser(id) {
    current = demo.users.find((user) => user.id === id) ?? demo.users[0];
    localStorage.setItem('calsync-demo-user', current.id);
    $('pat').value = '';
    status(`Signed in as ${current.name}.`);
    void refreshConnection();
    void refreshMeetings();
  }

  $('user').replaceChildren(
    ...demo.users.map((user) => {
      const option = document.createElement('option');
      option.value = user.id;
      option.textContent = `${user.name} (${user.email})`;
      return option;
    }),
  );
  $('user').addEventListener('change', (event) => selectUser(event.target.value));

  $('connect-oauth').addEventListener('click', async () => {
    try {
      const { authorizeUrl } = await gateway('/api/calendly/connect');
      window.location.assign(authorizeUrl);
    } catch (error) {
      status(error.message);
    }
  });
  $('fill-pat').addEventListener('click', () => ($('pat').value = current.calendly.personal_access_token));
  $('connect-pat').addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await gateway('/api/calendly/token', { method: 'POST', body: JSON.stringify({ token: $('pat').value }) });
      $('pat').value = '';
      status('Connected with a personal access token.');
    } catch (error) {
      status(`Could not connect: ${error.message}`);
    }
    await refreshConnection();
  });
  $('disconnect').addEventListener('click', async () => {
    try {
      await gateway('/api/calendly/connection', { method: 'DELETE' });
      status('Disconnected: the webhook and the credentials are gone.');
    } catch (error) {
      status(error.message);
    }
    await refreshConnection();
  });
  $('book').addEventListener('submit', async (event) => {
    event.preventDefault();
    const start = new Date($('start').value);
    const end = new Date(start.getTime() + 30 * 60_000);
    try {
      await simulator('/_sim/bookings', 'POST', {
        user: current.calendly.uri,
        invitee: { name: $('invitee-name').value, email: $('invitee-email').value },
        start_time: start.toISOString(),
        end_time: end.toISOString(),
        event_name: '30 Minute Meeting',
      });
      status('Booked at Calendly; waiting for the webhook...');
    } catch (error) {
      status(`Could not book: ${error.message}`);
    }
  });

  const tomorrow = new Date(Date.now() + 86_400_000);
  tomorrow.setMinutes(0, 0, 0);
  $('start').value = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);

  const remembered = localStorage.getItem('calsync-demo-user');
  $('user').value = remembered ?? demo.users[0].id;
  selectUser($('user').value);
  // Back from Calendly's consent page: say how the connect went (after the sign-in message).
  const params = new URLSearchParams(window.location.search);
  if (params.get('calendly') === 'connected') status('Calendly connected.');
  if (params.get('calendly') === 'error')
    status(`Calendly connection failed: ${params.get('reason') ?? 'unknown reason'}`);
  pollTimer = setInterval(() => {
    void refreshMeetings();
    void refreshConnection();
  }, 1000);
  window.addEventListener('beforeunload', () => clearInterval(pollTimer));
})();
