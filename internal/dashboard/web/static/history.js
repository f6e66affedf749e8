// history.js: a service's spec revisions (the History card of the service
// page) — the diff of a revision against the live service, and a confirmed
// rollback to it. The rollback buttons are rendered only for roles that may
// roll back; the server decides anyway.
import { $, fragment, api, randomID, confirmAction } from './app.js';

// initHistory wires the History card and returns its loader. onChange is
// called after a rollback (the status and the runs change too).
export function initHistory({ target, service, base, onChange = () => {} }) {
  const list = $('#history');
  const diff = $('#diff');
  const id = `${target}/${service}`;
  const load = () => fragment(list, list.dataset.frag);
  const diffURL = (rev) => `/ui/frag/service/${encodeURIComponent(target)}/${encodeURIComponent(service)}/diff?` +
    new URLSearchParams({ revision: rev });

  list.addEventListener('click', async (e) => {
    const d = e.target.closest('button[data-diff]');
    if (d) {
      d.disabled = true;
      diff.dataset.revision = d.dataset.diff;
      try {
        await fragment(diff, diffURL(d.dataset.diff));
      } finally {
        d.disabled = false;
      }
      return;
    }
    const r = e.target.closest('button[data-rollback]');
    if (!r) return;
    const to = Number(r.dataset.rollback);
    const what = [r.dataset.image && `image ${r.dataset.image}`, r.dataset.replicas && `${r.dataset.replicas} replica${r.dataset.replicas === '1' ? '' : 's'}`]
      .filter(Boolean).join(', ');
    await confirmAction({
      title: `Roll back ${service}`,
      text: `Roll ${id} back to revision ${to}${what ? ` (${what})` : ''}? The ledger records a rollback naming both revisions.`,
      okLabel: 'Roll back',
      danger: true,
      run: async () => {
        const res = await api('POST', base + '/rollback', { to }, { idempotencyKey: randomID() });
        const st = res.status;
        return { runId: res.runId, summary: st ? `${st.phase} · ${st.replicas.ready}/${st.replicas.desired} ready · revision ${st.revision || '–'}` : '' };
      },
      lookup: { action: 'rollback', target, service },
      onDone: () => { diff.replaceChildren(); delete diff.dataset.revision; load(); onChange(); },
    });
  });
  return load;
}
