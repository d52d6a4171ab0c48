// Supervisor wallboard: per queue waiting calls, longest wait, agent counts,
// service level and abandon rate today, the waiting callers; per agent state,
// time in state and current call. Built from the /api/events snapshot, kept
// live by events, and re-synced from GET /api/queues every few seconds (the
// counts that events do not carry, e.g. wrap-up). On each answered call the
// supervisor can listen, whisper or barge in with their registered phone
// (POST /api/calls/{id}/monitor) and stop again.

import { api, chrome, connectEvents, dur, el, pct, requireLogin, setConn, stateBadge, $ } from './common.js';

const root = $('#app');
chrome('/wallboard');
const me = await requireLogin(root, ['supervisor'], '监控墙登录 Wallboard');

const st = {
  offset: 0,            // server clock - browser clock
  queues: new Map(),    // name → snapshot queue
  agents: new Map(),    // id → {id, name, state, reason, since_ms, current_call}
  calls: new Map(),     // call id → {caller, customer_id, queue, queued_at, agent, state, answered_at, consulting}
  // call id → {mode, joined, pending, msg, ok, others: Map supervisor → mode, cell}
  monitor: new Map(),
};
const now = () => Date.now() + st.offset;

function setSnapshotQueues(acd) {
  if (!acd) return;
  st.offset = acd.now_ms - Date.now();
  for (const q of acd.queues) st.queues.set(q.name, q);
  for (const a of acd.agents) {
    const cur = st.agents.get(a.id) || { id: a.id, name: a.id };
    const s = typeof a.state === 'string' ? { state: a.state } : a.state;
    Object.assign(cur, { state: s.state, reason: s.reason || null, since_ms: a.since_ms, current_call: a.current_call, registered: a.registered });
    st.agents.set(a.id, cur);
  }
}

function onMessage(m) {
  switch (m.type) {
    case 'snapshot': {
      st.offset = m.now_ms - Date.now();
      for (const a of m.agents) st.agents.set(a.id, { ...a });
      setSnapshotQueues(m.acd);
      // Calls already in progress (after a reload or reconnect).
      const toLocal = (ms) => (ms ? ms - st.offset : undefined);
      for (const c of m.live_calls || []) {
        st.calls.set(c.call_id, {
          caller: c.caller, customer_id: c.customer_id, queue: c.queue, agent: c.agent,
          state: c.state, arrived_at: toLocal(c.arrived_ms), queued_at: toLocal(c.queued_ms), answered_at: toLocal(c.answered_ms),
        });
      }
      break;
    }
    case 'call_arrived':
      st.calls.set(m.call_id, { caller: m.caller, customer_id: m.customer_id, state: 'ivr', arrived_at: now() });
      break;
    case 'call_queued': {
      const c = st.calls.get(m.call_id) || { caller: '?' };
      bump(m.queue, +1);
      Object.assign(c, { queue: m.queue, state: 'waiting', queued_at: now(), priority: m.priority });
      st.calls.set(m.call_id, c);
      break;
    }
    case 'call_offered': {
      const c = st.calls.get(m.call_id);
      if (c) Object.assign(c, { state: 'ringing', agent: m.agent });
      break;
    }
    case 'call_answered': {
      const c = st.calls.get(m.call_id) || { caller: '?' };
      if (c.state === 'waiting' || c.state === 'ringing') bump(c.queue, -1);
      Object.assign(c, { state: 'answered', agent: m.agent, answered_at: now() });
      st.calls.set(m.call_id, c);
      break;
    }
    case 'call_transferred': {
      const c = st.calls.get(m.call_id);
      if (c && c.consulting && m.to === `agent ${c.consulting}`) {
        // An attended transfer completed: the caller talks to the consulted agent now.
        Object.assign(c, { state: 'answered', agent: c.consulting, consulting: null, note: m.note });
      } else if (c) {
        Object.assign(c, { state: 'transferred', note: m.note, to: m.to });
      }
      break;
    }
    case 'call_consulting': {
      const c = st.calls.get(m.call_id);
      if (c) c.consulting = m.agent;
      break;
    }
    case 'call_monitored': {
      const mon = monitorOf(m.call_id);
      const left = m.mode === 'none';
      if (m.supervisor === me.id) {
        clearTimeout(mon.timer);
        // The leave event may come before or after the stop request's answer:
        // either way the page says the monitoring ended.
        Object.assign(mon, left
          ? { mode: null, joined: false, pending: null, msg: '已结束监听 stopped', ok: true }
          : { mode: m.mode, joined: true, pending: null, msg: '', ok: true });
      } else if (left) {
        mon.others.delete(m.supervisor);
      } else {
        mon.others.set(m.supervisor, m.mode);
      }
      updateMonitorCell(m.call_id);
      break;
    }
    case 'call_abandoned':
    case 'call_ended': {
      const c = st.calls.get(m.call_id);
      if (c) {
        if (c.state === 'waiting' || c.state === 'ringing') bump(c.queue, -1);
        c.state = m.type === 'call_abandoned' ? 'abandoned' : 'ended';
        c.ended_at = now();
        const mon = st.monitor.get(m.call_id);
        if (mon) {
          clearTimeout(mon.timer);
          Object.assign(mon, { mode: null, joined: false, pending: null });
          mon.others.clear();
          updateMonitorCell(m.call_id);
        }
        // Keep ended calls a minute so the board shows what just happened.
        setTimeout(() => st.calls.delete(m.call_id), 60000);
      }
      break;
    }
    case 'agent_state': {
      const a = st.agents.get(m.agent) || { id: m.agent, name: m.agent };
      Object.assign(a, { state: m.state, reason: m.reason || null, since_ms: m.since_ms });
      if (m.state !== 'on_call' && m.state !== 'reserved') {
        a.current_call = null;
        // A consultation that failed or was cancelled frees the consulted agent.
        for (const c of st.calls.values()) if (c.consulting === m.agent) c.consulting = null;
      }
      st.agents.set(m.agent, a);
      break;
    }
    case 'queue_stats': {
      const q = st.queues.get(m.queue) || { name: m.queue, agents: {}, today: {} };
      Object.assign(q, { waiting: m.waiting, ringing: m.ringing, longest_wait_ms: m.longest_wait_ms, service_level: m.service_level });
      q.agents = { ...q.agents, ready: m.agents_ready, on_call: m.agents_on_call, not_ready: m.agents_not_ready };
      q.today = { ...q.today, offered: m.offered_today, answered: m.answered_today, abandoned: m.abandoned_today };
      q.abandon_rate = m.offered_today ? m.abandoned_today / m.offered_today : null;
      st.queues.set(m.queue, q);
      break;
    }
    default:
      break;
  }
  if (m.type.startsWith('call_') || m.type === 'agent_state') resyncSoon();
  // Current calls of agents follow the call events.
  if (m.type === 'call_offered' || m.type === 'call_answered') {
    const a = st.agents.get(m.agent);
    if (a) a.current_call = m.call_id;
  }
  render();
}

/** Adjust a queue's waiting count at once; the next snapshot has the truth. */
function bump(queue, by) {
  const q = queue && st.queues.get(queue);
  if (q) q.waiting = Math.max(0, (q.waiting || 0) + by);
}

let resync = null;
/** Re-read the ACD snapshot shortly after a change (counts events do not carry). */
function resyncSoon() {
  if (resync) return;
  resync = setTimeout(async () => {
    resync = null;
    try {
      setSnapshotQueues(await api('/api/queues'));
      render();
    } catch { /* the periodic poll retries */ }
  }, 300);
}

// ---------------------------------------------------------------- monitoring

const MODES = [
  ['listen', '监听 Listen', '只听,双方都听不到您 hear both, heard by none'],
  ['whisper', '耳语 Whisper', '只有坐席听到您 only the agent hears you'],
  ['barge', '强插 Barge', '三方通话 all three talk'],
];
const MODE_LABELS = Object.fromEntries(MODES.map(([m, l]) => [m, l]));

function monitorOf(callId) {
  let mon = st.monitor.get(callId);
  if (!mon) {
    mon = { mode: null, joined: false, pending: null, busy: false, msg: '', ok: true, others: new Map(), cell: null, timer: null };
    st.monitor.set(callId, mon);
  }
  return mon;
}

/**
 * The monitor cell of a call's row. Kept across renders (the table is
 * rebuilt every second; the buttons must not be replaced under the mouse).
 */
function monitorCell(callId) {
  const mon = monitorOf(callId);
  if (!mon.cell) {
    mon.cell = el('td', { class: 'monitor', 'data-call': callId });
    updateMonitorCell(callId);
  }
  return mon.cell;
}

/** Whether the call's buttons apply: answered and with an agent. */
function liveKey(callId) {
  const c = st.calls.get(callId);
  return c && c.state === 'answered' && c.agent ? `live:${c.agent}` : 'not-live';
}

/** Redraw the cell only when the call went live or stopped being live. */
function updateMonitorCellIfChanged(callId) {
  const mon = st.monitor.get(callId);
  if (mon && mon.cell && mon.key !== liveKey(callId)) updateMonitorCell(callId);
}

function updateMonitorCell(callId) {
  const mon = st.monitor.get(callId);
  if (!mon || !mon.cell) return;
  mon.key = liveKey(callId);
  const live = mon.key !== 'not-live';
  const busy = mon.busy;   // a request is under way
  const parts = [];
  if (live) {
    parts.push(el('div', { class: 'row monitor-buttons' },
      MODES.map(([mode, label, title]) => el('button', {
        class: `small-btn ${mon.joined && mon.mode === mode ? '' : 'secondary'}`,
        'data-mode': mode, title, disabled: busy || (mon.joined && mon.mode === mode),
        onclick: () => monitor(callId, mode),
      }, label)),
      el('button', {
        class: 'small-btn danger', 'data-mode': 'stop', title: '挂断您的监听话机 hang up your monitoring phone',
        disabled: busy || (!mon.joined && !mon.pending),
        onclick: () => stopMonitor(callId),
      }, '结束 Stop')));
  }
  if (mon.joined && mon.mode) {
    parts.push(el('div', { class: 'small monitor-mode', 'data-mode': mon.mode },
      el('span', { class: `badge mode-${mon.mode}` }, `当前 ${MODE_LABELS[mon.mode] || mon.mode}`)));
  }
  if (mon.pending) parts.push(el('div', { class: 'small muted monitor-pending' }, mon.pending));
  for (const [who, mode] of mon.others) {
    parts.push(el('div', { class: 'small muted' }, `${who}: ${MODE_LABELS[mode] || mode}`));
  }
  if (mon.msg) parts.push(el('div', { class: `msg small monitor-msg ${mon.ok ? 'ok' : 'err'}`, role: mon.ok ? 'status' : 'alert' }, mon.msg));
  if (!parts.length) parts.push('–');
  mon.cell.replaceChildren(...parts);
}

/** Call my phone into the call (or switch the mode when it is already in). */
async function monitor(callId, mode) {
  const mon = monitorOf(callId);
  const joining = !mon.joined;
  clearTimeout(mon.timer);
  Object.assign(mon, {
    busy: true,
    pending: joining ? `正在呼叫您的话机… calling your phone (${MODE_LABELS[mode]})` : `切换中… switching to ${MODE_LABELS[mode]}`,
    msg: '', ok: true,
  });
  updateMonitorCell(callId);
  try {
    const r = await api(`/api/calls/${encodeURIComponent(callId)}/monitor`, { method: 'POST', body: { mode } });
    if (joining && mon.joined) {
      // The phone answered (call_monitored) before this answer came back.
      mon.pending = null;
    } else if (joining) {
      // Shown as the current mode once the phone answers (call_monitored).
      mon.pending = `正在呼叫您的话机 ${r.extension}… answer it to start ${MODE_LABELS[r.mode] || r.mode}`;
      mon.timer = setTimeout(() => {
        if (mon.joined || !mon.pending) return;
        Object.assign(mon, { pending: null, ok: false, msg: `您的话机 ${r.extension} 未接听 your phone did not answer` });
        updateMonitorCell(callId);
      }, 30000);
    } else {
      // A switch while the phone is in: no new event, the answer is the news.
      Object.assign(mon, { pending: null, mode: r.mode, joined: true, msg: `已切换 now ${MODE_LABELS[r.mode] || r.mode}`, ok: true });
    }
  } catch (e) {
    const hint = e.status === 409 && /registered phone/.test(e.message)
      ? ' — 请先注册您的话机 register your SIP phone with your id and password'
      : '';
    Object.assign(mon, { pending: null, ok: false, msg: `${MODE_LABELS[mode]} 失败 failed: ${e.message}${hint}` });
  }
  mon.busy = false;
  updateMonitorCell(callId);
}

async function stopMonitor(callId) {
  const mon = monitorOf(callId);
  clearTimeout(mon.timer);
  Object.assign(mon, { busy: true, pending: '结束中… stopping', msg: '', ok: true });
  updateMonitorCell(callId);
  try {
    await api(`/api/calls/${encodeURIComponent(callId)}/monitor/stop`, { method: 'POST' });
    Object.assign(mon, { pending: null, joined: false, mode: null, msg: '已结束监听 stopped', ok: true });
  } catch (e) {
    Object.assign(mon, { pending: null, ok: false, msg: `结束失败 stop failed: ${e.message}` });
  }
  mon.busy = false;
  updateMonitorCell(callId);
}

function kpi(label, english, value, alert) {
  return el('div', { class: alert ? 'alert' : '', title: english }, el('b', {}, value), el('span', {}, label));
}

function render() {
  const t = now();
  const waitingOf = (q) => [...st.calls.entries()].filter(([, c]) => c.queue === q && (c.state === 'waiting' || c.state === 'ringing'));
  const queues = [...st.queues.values()].sort((a, b) => a.name.localeCompare(b.name));
  const qCards = queues.map((q) => {
    const waiting = waitingOf(q.name);
    const longest = Math.max(q.longest_wait_ms || 0, ...waiting.map(([, c]) => t - c.queued_at));
    const ag = q.agents || {};
    return el('div', { class: 'panel', 'data-queue': q.name },
      el('h2', {}, `队列 ${q.name}`),
      el('div', { class: 'kpi' },
        kpi('排队', 'waiting', el('span', { class: 'q-waiting' }, String(q.waiting || 0)), (q.waiting || 0) > 0),
        kpi('最长等待', 'longest wait', dur(longest), longest > 60000),
        kpi('服务水平', 'service level today', pct(q.service_level)),
        kpi('放弃率', 'abandon rate today', pct(q.abandon_rate), (q.abandon_rate || 0) > 0.1)),
      el('div', { class: 'kpi' },
        kpi('就绪', 'agents ready', ag.ready ?? 0),
        kpi('通话', 'agents on call', ag.on_call ?? 0),
        kpi('话后', 'agents in wrap-up', ag.wrap_up ?? 0),
        kpi('未就绪', 'agents not ready', ag.not_ready ?? 0)),
      el('div', { class: 'small muted' },
        `今日 today: 呼入 ${q.today?.offered ?? 0} · 接通 ${q.today?.answered ?? 0} · 放弃 ${q.today?.abandoned ?? 0}`));
  });
  $('#queues').replaceChildren(...(qCards.length ? qCards : [el('p', { class: 'muted' }, '无队列数据 (ACD not running?)')]));

  const waitingRows = [...st.calls.entries()]
    .filter(([, c]) => c.state === 'waiting' || c.state === 'ringing')
    .sort((a, b) => a[1].queued_at - b[1].queued_at)
    .map(([id, c]) => el('tr', { 'data-call': id, class: 'waiting-call' },
      el('td', {}, c.caller), el('td', {}, c.queue), el('td', { class: 'num' }, dur(t - c.queued_at)),
      el('td', {}, c.state === 'ringing' ? `振铃 ringing → ${c.agent}` : '排队 waiting'), el('td', { class: 'small muted' }, id)));
  $('#waiting').replaceChildren(...(waitingRows.length ? waitingRows : [el('tr', {}, el('td', { colspan: 5, class: 'muted' }, '无排队来电 no callers waiting'))]));

  const liveRows = [...st.calls.entries()]
    .filter(([, c]) => ['answered', 'transferred', 'ended', 'abandoned'].includes(c.state))
    .sort((a, b) => (b[1].answered_at || b[1].ended_at || 0) - (a[1].answered_at || a[1].ended_at || 0))
    .map(([id, c]) => el('tr', { 'data-call': id, 'data-state': c.state, class: 'live-call' },
      el('td', {}, c.caller), el('td', {}, c.queue || '–'), el('td', { class: 'agent' }, c.agent || '–'),
      el('td', { class: 'call-state' }, { answered: '通话中 answered', transferred: '已转接 transferred', ended: '已结束 ended', abandoned: '放弃 abandoned' }[c.state],
        c.consulting && c.state === 'answered' ? el('div', { class: 'small muted consulting' }, `咨询 consulting ${c.consulting}`) : null),
      el('td', { class: 'num' }, c.answered_at ? dur((c.ended_at || t) - c.answered_at) : '–'),
      monitorCell(id),
      el('td', { class: 'small muted' }, id)));
  $('#live').replaceChildren(...(liveRows.length ? liveRows : [el('tr', {}, el('td', { colspan: 7, class: 'muted' }, '无通话 no calls'))]));
  for (const id of st.monitor.keys()) {
    if (!st.calls.has(id)) st.monitor.delete(id);
    else updateMonitorCellIfChanged(id);
  }

  const agentRows = [...st.agents.values()].sort((a, b) => a.id.localeCompare(b.id)).map((a) =>
    el('tr', { 'data-agent': a.id },
      el('td', {}, a.id), el('td', {}, a.name || ''), el('td', {}, stateBadge(a.state, a.reason)),
      el('td', { class: 'num' }, a.since_ms ? dur(t - a.since_ms) : '–'),
      el('td', { class: 'small' }, a.registered === false ? el('span', { class: 'worst' }, '未注册 no phone') : a.registered ? '已注册' : '–'),
      el('td', { class: 'small current-call' }, a.current_call || '')));
  $('#agents').replaceChildren(...agentRows);
}

root.replaceChildren(
  el('h1', {}, '监控墙 Supervisor wallboard'),
  el('div', { class: 'grid cards', id: 'queues' }),
  el('div', { class: 'grid two', style: 'margin-top:16px' },
    el('div', { class: 'panel' },
      el('h2', {}, '排队来电 Waiting callers'),
      el('table', {}, el('thead', {}, el('tr', {}, ['来电 caller', '队列 queue', '等待 waited', '状态 state', 'call'].map((h) => el('th', {}, h)))),
        el('tbody', { id: 'waiting' }))),
    el('div', { class: 'panel' },
      el('h2', {}, '坐席 Agents'),
      el('table', {}, el('thead', {}, el('tr', {}, ['工号 id', '姓名 name', '状态 state', '时长 in state', '话机 phone', '当前通话 call'].map((h) => el('th', {}, h)))),
        el('tbody', { id: 'agents' })))),
  el('div', { class: 'panel', style: 'margin-top:16px' },
    el('h2', {}, '通话 Calls (live and just ended)'),
    el('table', {}, el('thead', {}, el('tr', {}, ['来电 caller', '队列 queue', '坐席 agent', '状态 state', '通话 talk', '监控 monitor', 'call'].map((h) => el('th', {}, h)))),
      el('tbody', { id: 'live' }))));

connectEvents(onMessage, setConn);
setInterval(async () => {
  try {
    setSnapshotQueues(await api('/api/queues'));
  } catch { /* shown by the connection badge */ }
  render();
}, 5000);
setInterval(render, 1000);
