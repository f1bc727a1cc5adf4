import type { SimUser } from '../users/user-directory';

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const hiddenInputs = (params: Record<string, string | undefined>) =>
  Object.entries(params)
    .filter(([key, value]) => value !== undefined && key !== 'sim_user' && key !== 'sim_decision')
    .map(([key, value]) => `<input type="hidden" name="${escape(key)}" value="${escape(value!)}">`)
    .join('');

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
<title>Authorize ${escape(params.client_id ?? '')} · Calendly simulator</title></head>
<body><main>
<h1>Allow ${escape(params.client_id ?? '')} to access a Calendly account?</h1>
<p>It asks for: ${scopes.map((scope) => `<code>${escape(scope)}</code>`).join(', ')}.</p>
<h2>Sign in as</h2>
${choices}
<form method="get" action="/oauth/authorize">${hidden}<input type="hidden" name="sim_decision" value="deny"><button type="submit">Deny</button></form>
</main></body>
</html>`;
}
