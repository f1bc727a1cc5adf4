import type { SimUser } from '../users/user-directory';

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const hiddenInputs = (params: Record<string, string | undefined>) =>
  Object.entries(params)
    .filter(([key, value]) => value !== undefined && key !== 'sim_user' && key !== 'sim_decision')
    .map(([key, value]) => `<input type="hidden" name="${escape(key)}" value="${escape(value!)}">`)
    .join('');

// Inline, so the page stands alone (no second request to the simulator) and looks like a real consent screen.
const style = `
:root { font-family: system-ui, sans-serif; color: #1b1b1f; background: #f3f5f9; line-height: 1.45; }
body { margin: 0; padding: 1rem; }
main { max-width: 36rem; margin: 2rem auto; background: #fff; border: 1px solid #dde1e8; border-radius: 10px; padding: 1.2rem 1.4rem; }
.brand { margin: 0 0 1rem; color: #006bff; font-weight: 700; letter-spacing: 0.02em; }
.brand small { color: #5f6368; font-weight: 400; }
h1 { font-size: 1.3rem; margin: 0 0 0.6rem; }
h2 { font-size: 1rem; margin: 1.2rem 0 0.5rem; }
code { background: #eef2f8; border-radius: 4px; padding: 0 0.25rem; overflow-wrap: anywhere; }
ul { list-style: none; margin: 0; padding: 0; }
li { border: 1px solid #dde1e8; border-radius: 8px; margin: 0.5rem 0; padding: 0.6rem 0.8rem; }
li form { display: flex; flex-wrap: wrap; gap: 0.3rem 0.8rem; align-items: center; margin: 0; }
li span { color: #5f6368; font-size: 0.9rem; overflow-wrap: anywhere; }
button { font: inherit; padding: 0.4rem 0.9rem; border-radius: 6px; border: 1px solid #006bff; background: #006bff; color: #fff; cursor: pointer; }
button.deny { background: #fff; color: #b3261e; border-color: #b3261e; }
button:focus-visible { outline: 3px solid #f9ab00; outline-offset: 2px; }
.deny-form { margin-top: 1.2rem; }
`;

/** The page a person sees at the authorize step: one Approve button per simulated user, and Deny. */
export function consentPage(params: Record<string, string | undefined>, users: SimUser[], scopes: string[]): string {
  const hidden = hiddenInputs(params);
  const choices =
    users.length === 0
      ? '<p>No simulated users yet: create one with <code>POST /_sim/users</code>, then reload this page.</p>'
      : `<ul>${users
          .map(
            (user) =>
              `<li><form method="get" action="/oauth/authorize">${hidden}` +
              `<input type="hidden" name="sim_user" value="${escape(user.uuid)}">` +
              `<button type="submit">Approve as ${escape(user.name)}</button> ` +
              `<span>${escape(user.email)} · ${escape(user.organization.name)} · ${user.plan} plan · ${user.role}</span>` +
              `</form></li>`,
          )
          .join('')}</ul>`;
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Authorize ${escape(params.client_id ?? '')} · Calendly simulator</title>
<style>${style}</style></head>
<body><main>
<p class="brand">Calendly <small>simulator: stands in for Calendly's consent screen</small></p>
<h1>Allow ${escape(params.client_id ?? '')} to access a Calendly account?</h1>
<p>It asks for: ${scopes.map((scope) => `<code>${escape(scope)}</code>`).join(', ')}.</p>
<h2>Sign in as</h2>
${choices}
<form class="deny-form" method="get" action="/oauth/authorize">${hidden}<input type="hidden" name="sim_decision" value="deny"><button type="submit" class="deny">Deny</button></form>
</main></body>
</html>`;
}
