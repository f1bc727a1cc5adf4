// The calsync demo: one page, no framework. Talks to the gateway as a signed-in user and to the
// Calendly simulator's control API as "the outside world" (invitees booking and canceling).
// Every state says in words what happened and what to do next: never a raw code, never silence.
(() => {
  'use strict';
  const demo = window.CALSYNC_DEMO;
  const $ = (id) => document.getElementById(id);
  /** `tone`: 'info' (default), 'error' (something to act on) or 'down' (calsync cannot be reached). */
  const status = (message, tone = 'info') => {
    $('status').textContent = message;
    $('status').dataset.tone = tone;
  };
  let current = null;
  let connected = false;
  let pollTimer = null;
  let lastMeetings = null;
  let events = null;
  // The id of the last change each user's page saw, so a new stream resumes right after it.
  const lastEventIds = new Map();
  /** Set while a change at Calendly should come back as a webhook: { since, what }. */
  let awaiting = null;
  /** Which system the last failed call could not reach, so its recovery can be announced. */
  let unreachable = null;
  const webhookPatienceMs = 10_000;

  /** A failed call, with the gateway's stable code kept for choosing the words. */
  class DemoError extends Error {
    constructor(message, { code, status: httpStatus, down } = {}) {
      super(message);
      this.code = code;
      this.status = httpStatus;
      this.down = down;
    }
  }

  // What each refusal means for the person at this page, and what they can do about it.
  const advice = {
    token_rejected:
      "Calendly did not accept that token. Press \u201cUse the simulator's token\u201d to fill in this user's own token, then \u201cConnect with token\u201d.",
    account_in_use:
      'That Calendly account is already connected to another demo user. Sign in as that user and press \u201cDisconnect\u201d first, or connect this user\u2019s own account.',
    webhook_not_allowed:
      'Calendly would not create a webhook for this account (free plans cannot have webhooks), so calsync cannot keep it in sync. Use a Standard-plan account.',
    unauthorized:
      'calsync did not accept this page\u2019s sign-in token. Reload the page; if `npm run dev` was restarted with another AUTH_JWT_SECRET, use the tokens it printed.',
    invalid_request: null,
    conflict: null,
  };
  const unavailableAdvice =
    'calsync is starting, or one of its services is down. This page retries every second; `npm run dev` shows which service is not ready.';
  // The reasons the OAuth callback sends the browser back with (?calendly=error&reason=...).
  const connectAdvice = {
    access_denied:
      'You denied access on Calendly\u2019s consent page, so nothing was connected. Press \u201cConnect with Calendly\u201d to try again.',
    state_invalid:
      'That connect link had expired or was already used, so nothing was connected. Press \u201cConnect with Calendly\u201d again.',
    code_rejected: 'Calendly did not accept the authorization. Press \u201cConnect with Calendly\u201d again.',
    invalid_callback:
      'Calendly sent the browser back without an authorization. Press \u201cConnect with Calendly\u201d again.',
    account_in_use: advice.account_in_use,
    webhook_not_allowed: advice.webhook_not_allowed,
    unavailable: `Connecting could not finish: ${unavailableAdvice}`,
    webhook_unavailable: `Connected, but the webhook could not be created yet: ${unavailableAdvice}`,
    webhook_failed:
      'Connected, but creating the webhook failed; `npm run dev` shows why. Disconnect and connect again.',
    internal:
      'Connecting failed inside calsync; `npm run dev` shows why. Press \u201cConnect with Calendly\u201d again.',
  };

  /** The words for a failed call: advice for known refusals, the server's own safe message otherwise. */
  function explain(error, doing) {
    if (error.down) return error.message;
    if (error.status === 503) return `${doing ? `Could not ${doing}: ` : ''}${unavailableAdvice}`;
    const words = advice[error.code] ?? error.message;
    return doing ? `Could not ${doing}: ${words}` : words;
  }

  async function call(system, url, options) {
    try {
      const response = await fetch(url, options);
      if (unreachable === system) {
        unreachable = null;
        status(`${system === 'calsync' ? 'calsync' : 'The Calendly simulator'} answers again.`);
      }
      return response;
    } catch {
      // fetch rejects only when nothing answered: the server is not running (or not reachable).
      unreachable = system;
      const where = system === 'calsync' ? `calsync at ${demo.gateway}` : `the Calendly simulator at ${demo.simulator}`;
      throw new DemoError(
        `Cannot reach ${where}. Is \`npm run dev\` still running? Start it again; this page retries every second.`,
        { down: true },
      );
    }
  }

  async function gateway(path, options = {}) {
    const response = await call('calsync', `${demo.gateway}${path}`, {
      ...options,
      headers: {
        authorization: `Bearer ${current.token}`,
        accept: 'application/json',
        ...(options.body ? { 'content-type': 'application/json' } : {}),
        ...options.headers,
      },
    });
    const body = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      throw new DemoError(body?.message ?? `calsync answered ${response.status} ${response.statusText}`, {
        code: body?.error,
        status: response.status,
      });
    }
    return body;
  }

  async function simulator(path, method, body) {
    const response = await call('simulator', `${demo.simulator}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const result = await response.json().catch(() => null);
    if (!response.ok) {
      throw new DemoError(result?.message ?? `the simulator answered ${response.status} ${response.statusText}`, {
        status: response.status,
      });
    }
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

  /** Enables exactly what makes sense: connect while not connected, disconnect and booking while connected. */
  function showConnected(isConnected) {
    connected = isConnected;
    $('disconnect').disabled = !isConnected;
    $('connect-oauth').disabled = isConnected;
    for (const control of $('connect-pat').elements) control.disabled = isConnected;
    for (const control of $('book').elements) control.disabled = !isConnected;
    $('book-hint').hidden = isConnected;
  }

  /** The connection's sync state in words: what is being imported, how changes arrive, what is wrong. */
  function syncFacts(sync) {
    const rows = [fact('Sync', sync.state, true)];
    const imported = sync.import;
    if (imported && sync.state === 'importing') {
      const progress =
        imported.status === 'queued'
          ? 'queued, starting shortly'
          : `${imported.eventsImported} meetings, ${imported.inviteesImported} invitees so far` +
            (imported.startedAt ? ` (since ${new Date(imported.startedAt).toLocaleTimeString()})` : '');
      const paused = imported.pausedUntil
        ? `; waiting for Calendly's rate limit until ${new Date(imported.pausedUntil).toLocaleTimeString()}`
        : '';
      rows.push(fact('Import', progress + paused));
    } else if (imported && imported.status === 'completed') {
      rows.push(fact('Import', `done: ${imported.eventsImported} meetings, ${imported.inviteesImported} invitees`));
    }
    if (sync.reason) rows.push(fact('Why', sync.detail ? `${sync.reason}: ${sync.detail}` : sync.reason));
    else if (sync.detail) rows.push(fact('Note', sync.detail));
    if (sync.mode)
      rows.push(fact('Changes arrive by', sync.modeReason ? `${sync.mode} (${sync.modeReason})` : sync.mode));
    return rows;
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
        if (connection.sync) rows.push(...syncFacts(connection.sync));
      }
      list.replaceChildren(...rows.flat());
      showConnected(connection.connected);
    } catch (error) {
      list.replaceChildren(...fact('Connected', error.down ? 'unknown: calsync cannot be reached' : 'unknown'));
      // Nothing here can work until calsync answers again; the next answer enables what fits.
      if (error.down)
        for (const control of document.querySelectorAll('main button, main input')) control.disabled = true;
      status(explain(error), error.down ? 'down' : 'error');
    }
  }

  function when(meeting) {
    const start = meeting.startTime ?? meeting.start_time;
    return start ? new Date(start).toLocaleString() : '';
  }

  /** Asks Calendly (the simulator) for a change and waits, visibly and not for ever, for its webhook. */
  function changeAtCalendly(what, request) {
    return request().then(
      () => {
        awaiting = { since: Date.now(), what };
        status(`${what} at Calendly; waiting for the webhook...`);
        void refreshMeetings();
      },
      (error) => status(explain(error, what.toLowerCase()), error.down ? 'down' : 'error'),
    );
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
    // Without a connection no webhook would bring the change back: offer no action that would look broken.
    if (canceled || !connected) return wrapper;
    const action = (text, what, request) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = text;
      button.setAttribute('aria-label', `${text} ${invitee.name}`);
      button.addEventListener('click', () => changeAtCalendly(what, request));
      wrapper.append(' ', button);
    };
    action('Cancel', `Canceled ${invitee.name}'s booking`, () =>
      simulator('/_sim/invitees/cancel', 'POST', {
        invitee: invitee.uri,
        reason: 'Canceled from the demo',
        canceler_type: 'invitee',
      }),
    );
    action('Reschedule +1 day', `Rescheduled ${invitee.name}`, () => {
      const meeting = invitee.meeting;
      const start = new Date(new Date(meeting.startTime ?? meeting.start_time).getTime() + 86_400_000);
      const end = new Date(start.getTime() + 30 * 60_000);
      return simulator('/_sim/invitees/reschedule', 'POST', {
        invitee: invitee.uri,
        start_time: start.toISOString(),
        end_time: end.toISOString(),
      });
    });
    action(
      invitee.noShow ? 'Undo no-show' : 'Mark no-show',
      invitee.noShow ? `Undid ${invitee.name}'s no-show` : `Marked ${invitee.name} as a no-show`,
      () => simulator('/_sim/invitees/no_show', invitee.noShow ? 'DELETE' : 'POST', { invitee: invitee.uri }),
    );
    return wrapper;
  }

  function renderMeetings(meetings) {
    const body = $('meetings');
    $('meetings-hint').hidden = connected || meetings.length === 0;
    if (meetings.length === 0) {
      const row = document.createElement('tr');
      const cell = document.createElement('td');
      cell.colSpan = 4;
      cell.textContent = connected
        ? 'No meetings yet: book one above.'
        : 'No meetings yet: connect Calendly (step 2), then book one.';
      row.append(cell);
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
  }

  async function refreshMeetings() {
    if (!current) return;
    try {
      const page = await gateway('/api/meetings?limit=50');
      const meetings = page.meetings ?? [];
      // Rendered with the connection state it was drawn for, so re-render when either changes.
      const signature = JSON.stringify([connected, meetings]);
      if (awaiting && lastMeetings !== null && signature !== lastMeetings) {
        awaiting = null;
        status('Webhook received: meetings updated.');
      } else if (awaiting && Date.now() - awaiting.since > webhookPatienceMs) {
        status(
          `${awaiting.what} at Calendly, but no webhook has come in ${Math.round(webhookPatienceMs / 1000)} seconds. ` +
            'Check the webhook state under step 2 (it should be active); the simulator lists its delivery attempts at ' +
            `${demo.simulator}/_sim/deliveries.`,
          'error',
        );
        awaiting = null;
      }
      if (signature === lastMeetings) return;
      lastMeetings = signature;
      renderMeetings(meetings);
    } catch (error) {
      status(explain(error), error.down ? 'down' : 'error');
    }
  }

  // Meetings arrive live as Server-Sent Events. EventSource cannot send an Authorization header,
  // so the page trades its JWT for a short-lived stream token (POST, with the header) and opens
  // the stream with that token in the URL; the JWT itself never goes into a URL.
  async function followChanges() {
    events?.close();
    events = null;
    const user = current;
    try {
      const { url } = await gateway('/api/meetings/events/token', { method: 'POST' });
      if (user !== current) return;
      const lastEventId = lastEventIds.get(user.id);
      const source = new EventSource(
        `${demo.gateway}${url}${lastEventId ? `&lastEventId=${encodeURIComponent(lastEventId)}` : ''}`,
      );
      events = source;
      source.addEventListener('meeting.changed', (event) => {
        lastEventIds.set(user.id, event.lastEventId);
        void refreshMeetings();
      });
      // The feed could not resume where this page left off: show the meetings as they are now.
      source.addEventListener('resync', () => void refreshMeetings());
      source.addEventListener('error', () => {
        // EventSource retries a dropped connection by itself; one it was refused (an expired
        // token) it gives up on, so the page gets a new token and resumes from the last id seen.
        if (source.readyState === EventSource.CLOSED && events === source) setTimeout(() => void followChanges(), 2000);
      });
    } catch (error) {
      status(explain(error, 'follow live changes'), error.down ? 'down' : 'error');
      setTimeout(() => user === current && void followChanges(), 2000);
    }
  }

  function selectUser(id) {
    current = demo.users.find((user) => user.id === id) ?? demo.users[0];
    localStorage.setItem('calsync-demo-user', current.id);
    $('pat').value = '';
    awaiting = null;
    lastMeetings = null;
    status(`Signed in as ${current.name}.`);
    void refreshConnection().then(refreshMeetings);
    void followChanges();
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
      status(explain(error, 'start connecting'), error.down ? 'down' : 'error');
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
      status(explain(error, 'connect'), error.down ? 'down' : 'error');
    }
    await refreshConnection();
  });
  $('disconnect').addEventListener('click', async () => {
    try {
      await gateway('/api/calendly/connection', { method: 'DELETE' });
      awaiting = null;
      status('Disconnected: the webhook and the credentials are gone. Meetings below are no longer kept in sync.');
    } catch (error) {
      status(explain(error, 'disconnect'), error.down ? 'down' : 'error');
    }
    await refreshConnection();
    await refreshMeetings();
  });
  $('book').addEventListener('submit', (event) => {
    event.preventDefault();
    const start = new Date($('start').value);
    const end = new Date(start.getTime() + 30 * 60_000);
    void changeAtCalendly(`Booked ${$('invitee-name').value}`, () =>
      simulator('/_sim/bookings', 'POST', {
        user: current.calendly.uri,
        invitee: { name: $('invitee-name').value, email: $('invitee-email').value },
        start_time: start.toISOString(),
        end_time: end.toISOString(),
        event_name: '30 Minute Meeting',
      }),
    );
  });

  const tomorrow = new Date(Date.now() + 86_400_000);
  tomorrow.setMinutes(0, 0, 0);
  $('start').value = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);

  showConnected(false);
  const remembered = localStorage.getItem('calsync-demo-user');
  $('user').value = demo.users.some((user) => user.id === remembered) ? remembered : demo.users[0].id;
  selectUser($('user').value);
  // Back from Calendly's consent page: say how the connect went (after the sign-in message), once:
  // the query is dropped from the address so a reload does not say it again.
  const params = new URLSearchParams(window.location.search);
  if (params.get('calendly') === 'connected') status('Calendly connected.');
  if (params.get('calendly') === 'error') {
    const reason = params.get('reason') ?? '';
    status(connectAdvice[reason] ?? connectAdvice.internal, 'error');
  }
  if (params.has('calendly')) window.history.replaceState(null, '', window.location.pathname);
  // Meetings come through the stream; only the connection's own state is looked at every second
  // (and the meetings once more when a webhook is overdue, to say so).
  pollTimer = setInterval(() => {
    void refreshConnection();
    if (awaiting && Date.now() - awaiting.since > webhookPatienceMs) void refreshMeetings();
  }, 1000);
  window.addEventListener('beforeunload', () => {
    clearInterval(pollTimer);
    events?.close();
  });
})();
