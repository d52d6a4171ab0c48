// Agent desk: state (ready / not ready with a reason), the screen pop with
// the customer's record when a call is offered to or answered by this agent,
// the service script for the call's queue, notes + disposition, blind
// transfer with a note (to an agent, a queue or an allow-listed outside
// number), attended transfer (consult a colleague while the caller holds,
// then complete or cancel), complaint registration (5 working days),
// promised callbacks, and the callback tasks (回访任务) with preview dialing:
// the agent calls a task (their own phone rings first, then the customer),
// and records the survey answers on the form built from the server's
// questions.
//
// Browser phone (浏览器话机, agents only): softphone.js registers over
// WebSocket (/sip) with the agent's id and desk password and takes calls
// over WebRTC; the panel has the switch (remembered in localStorage),
// microphone choice, answer / reject / hang up / hold / mute and a DTMF
// keypad. #phone-status carries data-state (off|registering|registered|
// ringing|incall|ended|error) and data-seen, the trail of states since the
// phone was switched on or the last call started ringing. URL parameters
// (tests use them): ?phone=1 switches the phone on at load; ?autoanswer=1
// answers incoming calls after 300 ms.

import { api, chrome, connectEvents, dur, el, requireLogin, session, setConn, stateBadge, time, $, ApiError } from './common.js';

// Before the login form: the browser phone needs the password typed there.
const PHONE_HANDOVER = 'hotline.phone.handover';
let phonePassword = takeHandedOverPassword();
if (!session()) rememberLoginPassword();

const root = $('#app');
chrome('/desk');
const me = await requireLogin(root, ['agent', 'supervisor'], '坐席登录 Agent desk');

const st = {
  offset: 0,
  state: null, reason: null, since: null,
  calls: new Map(),   // call id → {caller, customer_id, queue}
  current: null,      // {id, caller, customer_id, queue, phase: 'ringing'|'talking'|'consulted'|'ended', record}
  consult: null,      // my attended transfer: {callId, agent, phase: 'ringing'|'talking', since}
  scripts: [],
  agents: [],
  tasks: [],          // open callback tasks (GET /api/callback-tasks)
  questions: [],      // the survey's questions, from the same answer
  mode: undefined,    // [campaign] mode, null when no campaign runs
  taskMsg: new Map(), // task id → {text, ok} shown in its row
  calling: null,      // task id whose /call request is under way
  cb: null,           // my callback: {taskId, callId, phase: 'agent'|'customer'|'talking'|'ended', task, outcome}
  survey: null,       // the survey form's task: {task, callId, sent}
};
const now = () => Date.now() + st.offset;

const DISPOSITIONS = [
  ['solved', '已解决 solved'],
  ['repair_booked', '已派修 repair booked'],
  ['install_booked', '已预约安装 install booked'],
  ['callback_promised', '约定回电 callback promised'],
  ['complaint', '投诉已登记 complaint registered'],
  ['info', '咨询 information'],
  ['other', '其他 other'],
];
const REASONS = ['休息 break', '午餐 lunch', '培训 training', '会议 meeting', '处理工单 paperwork'];
const KINDS = { install: '安装 install', repair: '维修 repair', second: '二次回访 second' };
const OUTCOMES = {
  answered: '已完成 answered', partial: '部分完成 partial', busy: '忙线 busy', no_answer: '无人接听 no answer',
  invalid: '空号/错号 invalid', declined: '拒访 declined', error: '出错 error', interrupted: '中断 interrupted',
};
const CB_PHASES = {
  agent: '正在呼叫您的话机… calling your phone',
  customer: '正在呼叫客户… dialling the customer',
  talking: '通话中 talking with the customer',
  ended: '通话结束 call ended',
};

function msg(id, text, ok) {
  const m = $(id);
  m.className = `msg ${ok ? 'ok' : 'err'}`;
  m.textContent = text;
}

// ---------------------------------------------------------------- layout

root.replaceChildren(
  el('div', { class: 'grid two' },
    el('div', { class: 'grid' },
      el('div', { class: 'panel' },
        el('h2', {}, '我的状态 My state'),
        el('div', { class: 'row' }, el('span', { id: 'my-state' }, '–'), el('span', { id: 'my-since', class: 'muted small' })),
        el('div', { class: 'row', style: 'margin-top:10px' },
          el('button', { id: 'btn-ready', onclick: () => setState('ready') }, '就绪 Ready'),
          el('select', { id: 'nr-reason' }, REASONS.map((r) => el('option', { value: r }, r))),
          el('button', { id: 'btn-not-ready', class: 'secondary', onclick: () => setState('not_ready', $('#nr-reason').value) }, '未就绪 Not ready')),
        el('div', { id: 'state-msg', class: 'msg' })),
      me.role === 'agent' ? el('div', { class: 'panel', id: 'phone-panel' }) : null,
      el('div', { class: 'panel script', id: 'script' }, el('h2', {}, '服务话术 Script'), el('div', { id: 'script-body', class: 'muted' }, '来电时显示 shown when a call arrives')),
      el('div', { class: 'panel' },
        el('h2', {}, '约定回电 Promised callbacks'),
        el('div', { id: 'callbacks', class: 'small' }, '…'))),
    el('div', { class: 'grid' },
      el('div', { class: 'panel pop', id: 'pop' },
        el('h2', {}, '来电 Screen pop'),
        el('div', { id: 'pop-body', class: 'muted' }, '等待来电 waiting for a call')),
      el('div', { class: 'panel', id: 'wrap' },
        el('h2', {}, '处理结果 Notes and disposition'),
        el('div', { class: 'small muted', id: 'wrap-call' }, '–'),
        el('label', { for: 'disposition' }, '结果 Disposition'),
        el('select', { id: 'disposition' }, DISPOSITIONS.map(([v, l]) => el('option', { value: v }, l))),
        el('label', { for: 'notes' }, '备注 Notes'),
        el('textarea', { id: 'notes', maxlength: 4000 }),
        el('div', { class: 'row', style: 'margin-top:8px' }, el('button', { id: 'save-disposition', onclick: saveDisposition, disabled: true }, '保存 Save')),
        el('div', { id: 'disposition-msg', class: 'msg' })),
      el('div', { class: 'grid', style: 'grid-template-columns:1fr 1fr' },
        el('div', { class: 'panel' },
          el('h2', {}, '直接转接 Blind transfer'),
          el('label', { for: 'transfer-to' }, '转给 To'),
          el('select', { id: 'transfer-to', onchange: () => $('#transfer-number').classList.toggle('hidden', $('#transfer-to').value !== 'number:') }),
          el('input', { id: 'transfer-number', class: 'hidden', inputmode: 'tel', placeholder: '外线号码 outside number, e.g. 4008001234', style: 'margin-top:6px;width:100%' }),
          el('label', { for: 'transfer-note' }, '交接说明 Note (已知情况,避免重复询问)'),
          el('textarea', { id: 'transfer-note', maxlength: 4000 }),
          el('div', { class: 'row', style: 'margin-top:8px' }, el('button', { id: 'transfer', onclick: transfer, disabled: true }, '转接 Transfer')),
          el('div', { id: 'transfer-msg', class: 'msg' })),
        el('div', { class: 'panel' },
          el('h2', {}, '投诉登记 Complaint'),
          el('label', { for: 'complaint-dept' }, '责任部门 Department'),
          el('input', { id: 'complaint-dept', placeholder: '如 售后服务部' }),
          el('label', { for: 'complaint-text' }, '投诉内容 What happened'),
          el('textarea', { id: 'complaint-text', maxlength: 4000 }),
          el('div', { class: 'row', style: 'margin-top:8px' }, el('button', { id: 'complaint', onclick: complaint, disabled: true }, '登记 Register')),
          el('div', { id: 'complaint-msg', class: 'msg' }))),
      el('div', { class: 'panel', id: 'consult-panel' },
        el('h2', {}, '咨询转接 Attended transfer'),
        el('div', { class: 'small muted' }, '先与同事通话(客户听等待音乐),再转给他/她或取消回到客户 talk to a colleague first while the caller holds, then hand over or go back'),
        el('div', { class: 'grid', style: 'grid-template-columns:minmax(0,1fr) minmax(0,2fr);gap:12px' },
          el('div', {},
            el('label', { for: 'consult-to' }, '咨询坐席 Agent'),
            el('select', { id: 'consult-to', style: 'width:100%' })),
          el('div', {},
            el('label', { for: 'consult-note' }, '交接说明 Note'),
            el('textarea', { id: 'consult-note', maxlength: 4000, style: 'min-height:38px' }))),
        el('div', { class: 'row', style: 'margin-top:8px' },
          el('button', { id: 'consult', onclick: consult, disabled: true }, '咨询 Consult'),
          el('button', { id: 'consult-complete', onclick: () => endConsult(true), disabled: true }, '完成转接 Complete'),
          el('button', { id: 'consult-cancel', class: 'secondary', onclick: () => endConsult(false), disabled: true }, '取消 Cancel')),
        el('div', { id: 'consult-state', class: 'consult-state muted', 'data-phase': 'idle' }, '未咨询 no consultation'),
        el('div', { id: 'consult-msg', class: 'msg' })))),
  el('div', { class: 'grid tasks-row' },
    el('div', { class: 'panel', id: 'tasks-panel' },
      el('div', { class: 'row' },
        el('h2', { style: 'margin:0' }, '回访任务 Callback tasks'),
        el('span', { id: 'tasks-mode', class: 'muted small' }),
        el('button', { id: 'tasks-refresh', class: 'secondary small-btn', style: 'margin-left:auto', onclick: () => loadTasks() }, '刷新 Refresh')),
      el('div', { id: 'tasks', class: 'small', style: 'margin-top:8px' }, '…')),
    el('div', { class: 'panel', id: 'survey-panel' },
      el('h2', {}, '回访问卷 Survey'),
      el('div', { id: 'survey-body', class: 'muted small' }, '拨打任务后填写 fill in after calling a task'))));

// ---------------------------------------------------------------- state

async function setState(state, reason) {
  try {
    const r = await api(`/api/agents/${encodeURIComponent(me.id)}/state`, { method: 'POST', body: { state, reason } });
    applyState(r.state, r.reason, r.since_ms);
    msg('#state-msg', '', true);
  } catch (e) {
    msg('#state-msg', e.message, false);
  }
}

function applyState(state, reason, since) {
  const was = st.state;
  st.state = state; st.reason = reason; st.since = since;
  $('#my-state').replaceChildren(stateBadge(state, reason));
  if (was !== state && st.tasks.length) renderTasks();
}

// ---------------------------------------------------------------- screen pop

function scriptFor(queue) {
  return st.scripts.find((s) => s.queue === queue) || st.scripts.find((s) => s.queue === 'default');
}

function renderScript() {
  const c = st.current;
  const s = c && scriptFor(c.queue);
  if (!s) return;
  const name = c.record?.customer?.name || '客户';
  $('#script-body').className = '';
  $('#script-body').replaceChildren(
    el('div', { class: 'small muted', id: 'script-title' }, s.title),
    el('ol', {}, s.steps.map((t) => el('li', {}, t.replaceAll('{agent}', me.id).replaceAll('{customer}', name)))));
}

async function playRecording(callId, btn) {
  btn.disabled = true;
  try {
    const res = await api(`/api/calls/${encodeURIComponent(callId)}/recording`, { raw: true });
    const url = URL.createObjectURL(await res.blob());
    btn.replaceWith(el('audio', { controls: true, src: url, autoplay: true, class: 'recording' }));
  } catch (e) {
    btn.textContent = e.message;
  }
}

// Agents may play the recordings of their own calls only (the API refuses
// the others); supervisors every one.
function recordingCell(x) {
  if (!x.recording) return '–';
  if (me.role !== 'supervisor' && x.agent_id !== me.id) return el('span', { class: 'muted small', title: 'only the call\'s agent or a supervisor' }, '有录音');
  return el('button', { class: 'secondary recording-link', 'data-call': x.id, onclick: (e) => playRecording(x.id, e.target) }, '▶ 播放');
}

function renderPop() {
  const c = st.current;
  const pop = $('#pop');
  if (!c) return;
  pop.className = `panel pop ${c.phase === 'ringing' ? 'ringing' : ''}`;
  const head = el('div', { class: 'row' },
    el('b', { id: 'pop-caller' }, c.caller || '未知号码'),
    el('span', { class: 'badge state-on_call', id: 'pop-phase' }, { ringing: '振铃 ringing', talking: '通话中 talking', consulted: '同事咨询 consulted by a colleague', ended: '已结束 ended' }[c.phase]),
    el('span', { class: 'muted small' }, `队列 ${c.queue || '–'} · ${c.id}`));
  const parts = [head];
  if (c.transferNote) parts.push(el('div', { class: 'msg ok', id: 'pop-transfer-note' }, `转接说明: ${c.transferNote}`));
  const r = c.record;
  if (c.recordError) parts.push(el('div', { class: 'msg err' }, c.recordError));
  if (r) {
    parts.push(el('dl', { class: 'kv', id: 'pop-customer', style: 'margin-top:10px' },
      el('dt', {}, '客户 Customer'), el('dd', { id: 'pop-customer-name' }, `${r.customer.name} (${r.customer.id})`),
      el('dt', {}, '地址 Address'), el('dd', {}, r.customer.address || '–'),
      el('dt', {}, '区域 Region'), el('dd', {}, r.customer.region || '–'),
      el('dt', {}, '电话 Phones'), el('dd', {}, r.phones.map((p) => p.raw).join(', ') || '–')));
    parts.push(el('h2', { style: 'margin-top:12px' }, '工单 Work orders'));
    parts.push(el('table', { id: 'pop-orders' },
      el('thead', {}, el('tr', {}, ['工单 order', '类型 kind', '产品 product', '师傅 technician', '完工 completed'].map((h) => el('th', {}, h)))),
      el('tbody', {}, r.work_orders.length ? r.work_orders.map((w) => el('tr', { 'data-order': w.order_no },
        el('td', {}, w.order_no), el('td', {}, KINDS[w.kind] || w.kind), el('td', {}, w.product), el('td', {}, w.technician), el('td', {}, time(w.completed_at))))
        : [el('tr', {}, el('td', { colspan: 5, class: 'muted' }, '无 none'))])));
    parts.push(el('h2', { style: 'margin-top:12px' }, '未结案件 Open cases'));
    parts.push(el('table', { id: 'pop-cases' },
      el('thead', {}, el('tr', {}, ['类型 kind', '负责人 owner', '期限 deadline', '内容 description'].map((h) => el('th', {}, h)))),
      el('tbody', {}, r.open_cases.length ? r.open_cases.map((k) => el('tr', { 'data-case': k.id },
        el('td', {}, k.kind === 'complaint' ? '投诉 complaint' : '不满意 dissatisfied'), el('td', { class: 'case-owner' }, k.owner || '–'),
        el('td', { class: k.deadline < now() ? 'worst' : '' }, time(k.deadline)), el('td', {}, k.description)))
        : [el('tr', {}, el('td', { colspan: 4, class: 'muted' }, '无 none'))])));
    parts.push(el('h2', { style: 'margin-top:12px' }, '历史通话 Previous calls'));
    const prev = r.calls.filter((x) => x.id !== c.id);
    parts.push(el('table', { id: 'pop-calls' },
      el('thead', {}, el('tr', {}, ['时间 time', '方向', '坐席 agent', '队列', '通话 talk', '结果 outcome', '录音 recording'].map((h) => el('th', {}, h)))),
      el('tbody', {}, prev.length ? prev.map((x) => el('tr', { 'data-call': x.id },
        el('td', {}, time(x.arrived_at)), el('td', {}, x.direction === 'in' ? '呼入' : '呼出'), el('td', {}, x.agent_id || '–'),
        el('td', {}, x.queue || '–'), el('td', { class: 'num' }, dur(x.talk_ms)),
        el('td', {}, [x.disposition, x.notes].filter(Boolean).join(' · ') || '–'),
        el('td', {}, recordingCell(x))))
        : [el('tr', {}, el('td', { colspan: 7, class: 'muted' }, '无 none'))])));
  } else if (!c.recordError) {
    parts.push(el('p', { class: 'muted' }, '未识别客户 unknown caller'));
  }
  $('#pop-body').className = '';
  $('#pop-body').replaceChildren(...parts);
  $('#wrap-call').textContent = `${c.caller || ''} · ${c.id}`;
  $('#save-disposition').disabled = false;
  $('#transfer').disabled = c.phase !== 'talking' || Boolean(st.consult);
  $('#complaint').disabled = !r;
  renderConsult();
  renderScript();
}

async function loadRecord(c) {
  try {
    if (c.customer_id) {
      c.record = await api(`/api/customers/${encodeURIComponent(c.customer_id)}`);
    } else if (c.caller) {
      c.record = await api(`/api/customers?phone=${encodeURIComponent(c.caller)}`);
    }
  } catch (e) {
    c.recordError = e.status === 404 ? '未找到客户档案 no customer record' : e.message;
  }
  if (st.current === c) renderPop();
}

function popFor(callId, phase) {
  if (st.current && st.current.id === callId) {
    st.current.phase = phase;
    renderPop();
    return;
  }
  const known = st.calls.get(callId) || {};
  st.current = withCallback({ id: callId, phase, ...known });
  $('#notes').value = '';
  msg('#disposition-msg', '', true);
  renderPop();
  loadRecord(st.current);
}

function onMessage(m) {
  switch (m.type) {
    case 'snapshot': {
      st.offset = m.now_ms - Date.now();
      const mine = m.agents.find((a) => a.id === me.id);
      if (mine) applyState(mine.state, mine.reason, mine.since_ms);
      st.agents = m.agents;
      fillTransferTargets(m.acd);
      for (const c of m.live_calls || []) {
        st.calls.set(c.call_id, { caller: c.caller, customer_id: c.customer_id, queue: c.queue });
        // A reload mid-call brings the screen pop back.
        if (c.agent === me.id && (c.state === 'ringing' || c.state === 'answered')) {
          popFor(c.call_id, c.state === 'answered' ? 'talking' : 'ringing');
        }
      }
      break;
    }
    case 'call_arrived':
      st.calls.set(m.call_id, { caller: m.caller, customer_id: m.customer_id });
      break;
    case 'call_queued': {
      const c = st.calls.get(m.call_id) || {};
      c.queue = m.queue;
      st.calls.set(m.call_id, c);
      break;
    }
    case 'call_transferred': {
      const c = st.calls.get(m.call_id) || {};
      c.transferNote = m.note;
      st.calls.set(m.call_id, c);
      if (st.consult && st.consult.callId === m.call_id && m.from_agent === me.id) {
        st.consult = null;
        msg('#consult-msg', `已转给 ${m.to.replace(/^agent /, '坐席 ')} transferred`, true);
      }
      if (st.current && st.current.id === m.call_id && m.from_agent === me.id) {
        st.current.phase = 'ended';
        renderPop();
      } else if (st.current && st.current.id === m.call_id && m.to === `agent ${me.id}`) {
        // The call was handed to me. The ACD may have offered it (and this
        // desk popped it) before this event came from the call: the note
        // goes on the pop either way.
        st.current.transferNote = m.note;
        // Consulted, then handed the caller: now talking to them.
        if (st.current.phase === 'consulted') st.current.phase = 'talking';
        renderPop();
      }
      break;
    }
    case 'call_consulting':
      if (st.consult && st.consult.callId === m.call_id && st.consult.agent === m.agent) {
        st.consult.phase = 'talking';
        st.consult.since = now();
        renderConsult();
      } else if (m.agent === me.id) {
        popFor(m.call_id, 'consulted');
      }
      break;
    case 'call_offered':
      if (m.agent === me.id) popFor(m.call_id, 'ringing');
      break;
    case 'call_answered':
      if (isMyCallback(m)) setCallbackPhase('talking');
      if (m.agent === me.id || isMyCallback(m)) popFor(m.call_id, 'talking');
      break;
    case 'callback_dialing':
      if (isMyCallback(m)) {
        if (!st.cb.callId) st.cb.callId = m.call_id;
        setCallbackPhase('customer');
      }
      break;
    case 'callback_result':
      if (isMyCallback(m)) {
        st.cb.outcome = m.outcome;
        st.cb.phase = 'ended';
        const text = `结果 result: ${OUTCOMES[m.outcome] || m.outcome}`;
        st.taskMsg.set(m.task_id, { text, ok: m.outcome === 'answered' || m.outcome === 'partial' });
        renderSurvey();
      }
      loadTasks();
      break;
    case 'call_ended':
      if (st.consult && st.consult.callId === m.call_id) {
        st.consult = null;
        msg('#consult-msg', '客户已挂断 the caller hung up', false);
      }
      if (st.current && st.current.id === m.call_id) {
        st.current.phase = 'ended';
        renderPop();
      }
      if (isMyCallback(m)) setCallbackPhase('ended');
      setTimeout(() => st.calls.delete(m.call_id), 600000);
      break;
    case 'agent_state':
      if (m.agent === me.id) {
        applyState(m.state, m.reason, m.since_ms);
        // Consulted, then let go (cancelled): the call is not mine.
        if (st.current && st.current.phase === 'consulted' && m.state !== 'on_call' && m.state !== 'reserved') {
          st.current.phase = 'ended';
          renderPop();
        }
      }
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------- actions

async function saveDisposition() {
  const c = st.current;
  if (!c) return;
  const body = { disposition: $('#disposition').value, notes: $('#notes').value };
  const btn = $('#save-disposition');
  btn.disabled = true;
  // The call's end record is written in the background: a call that ended a
  // moment ago may still answer 409 (in progress) or 403 (agent not yet on
  // the record). Retry for a few seconds before reporting.
  for (let i = 0; ; i++) {
    try {
      await api(`/api/calls/${encodeURIComponent(c.id)}/disposition`, { method: 'POST', body });
      msg('#disposition-msg', `已保存 saved: ${body.disposition}`, true);
      break;
    } catch (e) {
      const settling = e instanceof ApiError && (e.status === 409 || e.status === 403 || e.status === 404);
      if (settling && i < 10 && c.phase === 'ended') {
        msg('#disposition-msg', '保存中… saving', true);
        await new Promise((r) => setTimeout(r, 700));
        continue;
      }
      msg('#disposition-msg', e.status === 409 ? '通话结束后保存 save after the call ends' : e.message, false);
      break;
    }
  }
  btn.disabled = false;
}

function fillTransferTargets(acd) {
  const sel = $('#transfer-to');
  const opts = [];
  for (const a of st.agents) if (a.id !== me.id) opts.push(el('option', { value: `agent:${a.id}` }, `坐席 ${a.id} ${a.name}`));
  for (const q of acd?.queues || []) opts.push(el('option', { value: `queue:${q.name}` }, `队列 ${q.name}`));
  opts.push(el('option', { value: 'number:' }, '外线号码 outside number…'));
  const keep = sel.value;
  sel.replaceChildren(...opts);
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
  const csel = $('#consult-to');
  const ckeep = csel.value;
  csel.replaceChildren(...st.agents.filter((a) => a.id !== me.id)
    .map((a) => el('option', { value: a.id }, `坐席 ${a.id} ${a.name}`)));
  if (ckeep && [...csel.options].some((o) => o.value === ckeep)) csel.value = ckeep;
}

async function transfer() {
  const c = st.current;
  if (!c) return;
  let [kind, target] = $('#transfer-to').value.split(/:(.*)/s);
  if (kind === 'number') {
    target = $('#transfer-number').value.replace(/[\s-]/g, '');
    if (!/^\+?\d{3,}$/.test(target)) {
      msg('#transfer-msg', '请输入外线号码 enter the outside number (digits)', false);
      return;
    }
  }
  try {
    await api(`/api/calls/${encodeURIComponent(c.id)}/transfer`, { method: 'POST', body: { to: { [kind]: target }, note: $('#transfer-note').value } });
    msg('#transfer-msg', `已转接 transferred to ${target}`, true);
  } catch (e) {
    msg('#transfer-msg', e.message, false);
  }
}

// ---------------------------------------------------------------- attended transfer

function renderConsult() {
  const c = st.current;
  const k = st.consult && c && st.consult.callId === c.id ? st.consult : null;
  const talking = c && c.phase === 'talking';
  $('#consult').disabled = !talking || Boolean(k);
  $('#consult-complete').disabled = !k;
  $('#consult-cancel').disabled = !k;
  const box = $('#consult-state');
  if (!k) {
    box.dataset.phase = 'idle';
    box.className = 'consult-state muted';
    box.textContent = talking ? '未咨询 no consultation' : '通话中可用 available during a connected call';
    return;
  }
  box.dataset.phase = k.phase;
  box.className = 'consult-state';
  box.textContent = k.phase === 'ringing'
    ? `正在呼叫坐席 ${k.agent},客户听等待音乐 ringing ${k.agent}; the caller is on hold`
    : `与坐席 ${k.agent} 通话中,客户保持 talking with ${k.agent}; the caller is on hold — 完成转接 or 取消`;
}

async function consult() {
  const c = st.current;
  const agent = $('#consult-to').value;
  if (!c || !agent) return;
  $('#consult').disabled = true;
  msg('#consult-msg', '', true);
  // Set before the request: the answer (call_consulting) may come first.
  const k = { callId: c.id, agent, phase: 'ringing', since: now() };
  st.consult = k;
  renderPop();
  try {
    await api(`/api/calls/${encodeURIComponent(c.id)}/consult`, { method: 'POST', body: { agent, note: $('#consult-note').value } });
    // The consulted phone may ring out: no event says so; offer cancel with a hint.
    setTimeout(() => {
      if (st.consult === k && k.phase === 'ringing') msg('#consult-msg', `坐席 ${agent} 仍未接听 still not answering — 可取消 you may cancel`, false);
    }, 30000);
  } catch (e) {
    if (st.consult === k) st.consult = null;
    msg('#consult-msg', `咨询失败 consult failed: ${e.message}`, false);
  }
  renderPop();
}

async function endConsult(complete) {
  const c = st.current;
  const k = st.consult;
  if (!c || !k) return;
  const path = `/api/calls/${encodeURIComponent(k.callId)}/consult/${complete ? 'complete' : 'cancel'}`;
  $('#consult-complete').disabled = true;
  $('#consult-cancel').disabled = true;
  try {
    const r = await api(path, { method: 'POST', body: complete ? { note: $('#consult-note').value } : undefined });
    st.consult = null;
    if (complete) msg('#consult-msg', `已转给坐席 ${r.consulted} transferred to ${r.consulted}`, true);
    else msg('#consult-msg', `已取消,回到客户 cancelled; you are back with the caller`, true);
  } catch (e) {
    // No consultation on the server any more (it rang out or was hung up): reset.
    if (e.status === 409 && /no consultation/.test(e.message)) st.consult = null;
    msg('#consult-msg', `${complete ? '完成转接' : '取消'}失败 failed: ${e.message}`, false);
  }
  renderPop();
}

async function complaint() {
  const c = st.current;
  if (!c?.record) return;
  try {
    const k = await api('/api/cases', {
      method: 'POST',
      body: { customer_id: c.record.customer.id, description: $('#complaint-text').value, department: $('#complaint-dept').value, call_id: c.id },
    });
    msg('#complaint-msg', `已登记 ${k.id},处理期限 deadline ${time(k.deadline)} (5个工作日)`, true);
    c.record.open_cases.push(k);
    renderPop();
  } catch (e) {
    msg('#complaint-msg', e.message, false);
  }
}

async function loadCallbacks() {
  const box = $('#callbacks');
  if (me.role !== 'supervisor') {
    // Callback requests are listed for supervisors, who hand them out.
    box.replaceChildren(el('span', { class: 'muted' }, '由主管分配 assigned by the supervisor'));
    return;
  }
  try {
    const rows = await api('/api/callback-requests?state=pending&limit=20');
    box.replaceChildren(rows.length ? el('table', {},
      el('thead', {}, el('tr', {}, ['号码 phone', '客户', '约定时间 due'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows.map((r) => el('tr', {}, el('td', {}, r.phone), el('td', {}, r.customer_id || '–'), el('td', {}, time(r.due_at))))))
      : el('span', { class: 'muted' }, '无待回电 none pending'));
  } catch (e) {
    box.textContent = e.message;
  }
}

// ---------------------------------------------------------------- callback tasks (回访任务)

/** True when the event belongs to the callback this desk placed. */
function isMyCallback(m) {
  const k = st.cb;
  if (!k) return false;
  if (k.callId) return m.call_id === k.callId;
  // The events may come before the answer to POST /call.
  return m.task_id === k.taskId && (m.agent === undefined || m.agent === me.id);
}

/** A callback's pop: the customer from the task (the call leaves from us). */
function withCallback(c) {
  const k = st.cb;
  if (!k || k.callId !== c.id) return c;
  c.customer_id = c.customer_id || k.task.customer.id;
  c.caller = k.task.customer.phone || c.caller;
  c.queue = c.queue || '回访 callback';
  return c;
}

function setCallbackPhase(phase) {
  const k = st.cb;
  if (!k || k.phase === phase) return;
  // Never back: a late answer to POST /call does not undo "dialling the customer".
  const order = ['agent', 'customer', 'talking', 'ended'];
  if (order.indexOf(phase) < order.indexOf(k.phase)) return;
  k.phase = phase;
  // Steps pass quickly with an auto-answering phone: keep the trail.
  k.seen = [...(k.seen || []), phase];
  st.taskMsg.set(k.taskId, { text: CB_PHASES[phase], ok: true, status: true });
  renderTasks();
  renderSurvey();
}

/** The agent is busy with a call (theirs or a callback being placed). */
function onCall() {
  if (st.state === 'on_call' || st.state === 'reserved') return true;
  if (st.cb && st.cb.phase !== 'ended') return true;
  return Boolean(st.current && (st.current.phase === 'ringing' || st.current.phase === 'talking'));
}

function windowCell(t) {
  const late = t.deadline < now();
  return el('td', { class: 'small' },
    el('div', {}, `截止 ${time(t.window_end)}`),
    el('div', { class: late ? 'worst' : 'muted' }, `期限 deadline ${time(t.deadline)}`));
}

function taskRow(t) {
  const m = st.taskMsg.get(t.id);
  const busy = st.calling !== null || onCall() || t.state !== 'pending';
  const w = t.work_order;
  const active = st.cb && st.cb.taskId === t.id;
  return el('tr', { class: `task${active ? ' active' : ''}`, 'data-task': t.id, 'data-state': t.state },
    el('td', {},
      el('b', { class: 'task-customer' }, t.customer.name || t.customer.id),
      el('div', { class: 'muted task-phone' }, t.customer.phone || '无号码 no number')),
    el('td', { class: 'task-region' }, t.customer.region || '–'),
    el('td', { class: 'task-order' }, w
      ? [el('div', {}, w.order_no), el('div', { class: 'muted' }, [w.product, w.technician].filter(Boolean).join(' · ') || '–')]
      : '–'),
    el('td', { class: 'task-kind' }, KINDS[t.kind] || t.kind),
    windowCell(t),
    el('td', { class: 'num task-attempts' }, t.attempts),
    el('td', { class: 'task-outcome' }, t.last_outcome ? (OUTCOMES[t.last_outcome] || t.last_outcome) : '–'),
    el('td', { class: 'task-action' },
      el('button', { class: 'call-task small-btn', 'data-task': t.id, disabled: busy, onclick: () => callTask(t) },
        st.calling === t.id ? '呼叫中… calling' : '拨打 Call'),
      m ? el('div', { class: `task-msg msg ${m.ok ? 'ok' : 'err'}`, role: m.ok ? 'status' : 'alert' }, m.text) : null));
}

function renderTasks() {
  const box = $('#tasks');
  $('#tasks-mode').textContent = st.mode === undefined ? ''
    : st.mode ? `模式 mode: ${st.mode}` : '回访未启用 campaign not enabled';
  if (!st.tasks.length) {
    box.replaceChildren(el('span', { class: 'muted' }, '无待回访任务 no open tasks'));
    return;
  }
  box.replaceChildren(el('table', { id: 'tasks-table' },
    el('thead', {}, el('tr', {}, ['客户 customer', '区域 region', '工单 order', '类型 kind', '时限 window', '次数 attempts', '上次结果 last outcome', ''].map((h) => el('th', {}, h)))),
    el('tbody', {}, st.tasks.map(taskRow))));
}

async function loadTasks() {
  try {
    const r = await api('/api/callback-tasks?state=open&limit=200');
    st.tasks = r.tasks;
    st.questions = r.questions;
    st.mode = r.mode;
    // The task being called stays in the list until its result.
    if (st.cb && !st.tasks.some((t) => t.id === st.cb.taskId) && st.cb.phase !== 'ended') st.tasks.unshift(st.cb.task);
    renderTasks();
  } catch (e) {
    $('#tasks').replaceChildren(el('div', { class: 'msg err', role: 'alert' }, e.message));
  }
}

async function callTask(t) {
  if (st.calling || onCall()) return;
  st.calling = t.id;
  st.taskMsg.set(t.id, { text: CB_PHASES.agent, ok: true, status: true });
  st.cb = { taskId: t.id, callId: null, phase: 'agent', task: t };
  renderTasks();
  try {
    const r = await api(`/api/callback-tasks/${encodeURIComponent(t.id)}/call`, { method: 'POST', body: {} });
    if (st.cb && st.cb.taskId === t.id) st.cb.callId = r.call_id;
    st.survey = { task: t, callId: r.call_id, sent: null };
    if (st.current && st.current.id === r.call_id) {
      // The pop came first (events before this answer): give it the customer.
      withCallback(st.current);
      renderPop();
      if (!st.current.record) loadRecord(st.current);
    }
    renderSurvey();
  } catch (e) {
    if (st.cb && st.cb.taskId === t.id) st.cb = null;
    st.taskMsg.set(t.id, { text: `拨打失败 call failed: ${e.message}`, ok: false });
  }
  st.calling = null;
  renderTasks();
}

/** "…是否满意?满意请按1…" → "…是否满意?": the question without the keypad part. */
function questionText(prompt) {
  const q = prompt.replace(/[^??::。]*请按.*$/s, '').trim();
  return q || prompt;
}

function renderSurvey() {
  const s = st.survey;
  const body = $('#survey-body');
  if (!s) return;
  const k = st.cb && st.cb.callId === s.callId ? st.cb : null;
  const t = s.task;
  const status = k
    ? (k.outcome ? `结果 result: ${OUTCOMES[k.outcome] || k.outcome}` : CB_PHASES[k.phase])
    : '';
  const existing = $('#survey-form');
  if (existing && existing.dataset.call === s.callId) {
    // Same call: keep what the agent ticked, update the status line only.
    $('#callback-status').textContent = status;
    $('#callback-status').dataset.seen = (k?.seen || []).join(' ');
    return;
  }
  const fields = st.questions.map((q) => el('fieldset', { class: 'q', 'data-question': q.key },
    el('legend', { title: q.prompt }, questionText(q.prompt)),
    el('div', { class: 'choices' }, q.choices.map((c) => el('label', { class: 'choice' },
      el('input', { type: 'radio', name: `q-${q.key}`, value: c.key, id: `q-${q.key}-${c.key}` }),
      ` ${c.label}`)))));
  const form = el('form', { id: 'survey-form', 'data-task': t.id, 'data-call': s.callId, onsubmit: submitSurvey },
    el('div', { class: 'row' },
      el('b', {}, t.customer.name || t.customer.id),
      el('span', { class: 'muted' }, [t.work_order?.order_no, t.work_order?.product, KINDS[t.kind] || t.kind].filter(Boolean).join(' · '))),
    el('div', { id: 'callback-status', class: 'consult-state', role: 'status', 'data-seen': (k?.seen || []).join(' ') }, status),
    ...fields,
    el('label', { for: 'survey-remarks' }, '备注 Remarks'),
    el('textarea', { id: 'survey-remarks', maxlength: 4000 }),
    el('div', { class: 'row', style: 'margin-top:8px' }, el('button', { type: 'submit', id: 'survey-submit' }, '提交 Submit')),
    el('div', { id: 'survey-msg', class: 'msg' }));
  body.className = '';
  body.replaceChildren(form);
}

async function submitSurvey(ev) {
  ev.preventDefault();
  const s = st.survey;
  if (!s) return;
  const answers = {};
  for (const q of st.questions) {
    const picked = $(`input[name="q-${q.key}"]:checked`);
    if (picked) answers[q.key] = Number(picked.value);
  }
  const btn = $('#survey-submit');
  const box = $('#survey-msg');
  btn.disabled = true;
  try {
    const r = await api(`/api/callback-tasks/${encodeURIComponent(s.task.id)}/survey`, {
      method: 'POST', body: { call_id: s.callId, answers, remarks: $('#survey-remarks').value },
    });
    s.sent = r;
    box.className = 'msg ok';
    box.removeAttribute('role');
    box.textContent = r.dissatisfied && r.case_id ? `已记录 recorded · 已转部门经理 case opened: ${r.case_id}` : '已记录 recorded';
    loadTasks();
  } catch (e) {
    box.className = 'msg err';
    box.setAttribute('role', 'alert');
    box.textContent = e.message;
    btn.disabled = false;
  }
}

// ---------------------------------------------------------------- browser phone (浏览器话机)

// The phone registers with the agent's SIP password, which is also the desk
// login password. common.js reloads the page after a login, so the password
// typed in its form is handed to the reloaded page through sessionStorage
// for that one reload (written when the page goes away with a new agent
// session, removed as soon as the next page reads it). After that it lives
// only in this page's memory; a page opened with an existing session asks
// for it in the panel.
function takeHandedOverPassword() {
  const raw = sessionStorage.getItem(PHONE_HANDOVER);
  sessionStorage.removeItem(PHONE_HANDOVER);
  try {
    const handed = JSON.parse(raw || 'null');
    const s = session();
    return handed && s && s.id === handed.id ? handed.password : null;
  } catch {
    return null;
  }
}

function rememberLoginPassword() {
  let typed = null;
  // Capture phase: runs before common.js's own submit handler.
  document.addEventListener('submit', (e) => {
    if (e.target.id === 'login-form') typed = { id: $('#login-id').value.trim(), password: $('#login-password').value };
  }, true);
  addEventListener('pagehide', () => {
    const s = session();
    if (typed && s && s.id === typed.id && s.role === 'agent') sessionStorage.setItem(PHONE_HANDOVER, JSON.stringify(typed));
  });
}

const PHONE_ENABLED = 'hotline.phone.enabled';   // localStorage: '1' when the agent switched the phone on
const PHONE_MIC = 'hotline.phone.mic';           // localStorage: the chosen microphone's deviceId
const PHONE_LINGER_MS = 3000;                    // how long "ended" stays before the registration shows again
const PHONE_KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];
const PHONE_KEY_IDS = { '*': 'star', '#': 'hash' };
const phoneParams = new URLSearchParams(location.search);

const phone = {
  module: null,          // import('./softphone.js'), started with the panel
  Softphone: null,       // the class from it
  ua: null,              // the Softphone while switched on
  registration: 'off',   // off | registering | registered | error
  error: '',             // shown with state error
  needPassword: false,   // switched on without a password in memory: the panel asks for it
  call: null,            // {caller, hotlineCall, customer, phase: 'ringing'|'incall', answering}
  held: false,
  endedAt: 0,
  endedText: '',
  seen: [],              // data-seen trail
};

const ENDED_TEXT = {
  remote_bye: '对方已挂断 the other side hung up',
  local_bye: '您已挂断 you hung up',
  cancelled: '来电已取消 the caller hung up before the answer',
  rejected: '已拒接 rejected',
  failed: '通话失败 the call failed',
};

/** The panel's state: the call first, then a moment of "ended", then the registration. */
function phoneState() {
  if (phone.call) return phone.call.phase;
  if (phone.endedAt && Date.now() - phone.endedAt < PHONE_LINGER_MS) return 'ended';
  return phone.registration;
}

function phoneStatusText(state) {
  const c = phone.call;
  switch (state) {
    case 'off': return phone.needPassword ? '未启用 off — 请输入密码 enter your password to switch the phone on' : '未启用 off';
    case 'registering': return '正在注册… registering';
    case 'registered': return '已注册 registered';
    case 'ringing': return `来电 incoming call from ${c.caller || '未知号码 unknown number'}${c.answering ? ' — 正在接通… answering' : ''}`;
    case 'incall': return ['通话中 in call', c.caller, phone.held ? '已保持 on hold' : '', phone.ua?.muted ? '已静音 muted' : ''].filter(Boolean).join(' · ');
    case 'ended': return `已挂断 ended · ${phone.endedText}`;
    default: return `错误 error: ${phone.error}`;
  }
}

function renderPhone() {
  const box = $('#phone-status');
  if (!box) return;
  const state = phoneState();
  if (box.dataset.state !== state) phone.seen.push(state);
  box.dataset.state = state;
  box.dataset.seen = phone.seen.join(' ');
  box.textContent = phoneStatusText(state);
  const ringing = state === 'ringing';
  const incall = state === 'incall';
  ring(ringing && !phone.call.answering);
  $('#phone-enable').checked = Boolean(phone.ua) || phone.needPassword;
  $('#phone-password-form').classList.toggle('hidden', !phone.needPassword);
  $('#phone-answer').disabled = !ringing || phone.call.answering;
  $('#phone-reject').disabled = !ringing;
  $('#phone-hangup').disabled = !incall;
  $('#phone-hold').disabled = !incall || !holdTarget();
  $('#phone-hold').textContent = phone.held ? '恢复 Resume' : '保持 Hold';
  $('#phone-mute').disabled = !incall;
  $('#phone-mute').textContent = phone.ua?.muted ? '取消静音 Unmute' : '静音 Mute';
  for (const b of document.querySelectorAll('#phone-keypad button')) b.disabled = !incall;
}

// The ring while the browser phone rings: 425 Hz, 1 s on, 4 s off (the
// Chinese ring cadence). Browsers let a page make sound only after the agent
// has touched it; until then the pulsing status is the only sign.
const ringer = { ctx: null, timer: 0 };

function ringBeep() {
  const ctx = ringer.ctx;
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.frequency.value = 425;
  gain.gain.value = 0.12;
  osc.connect(gain).connect(ctx.destination);
  osc.start();
  osc.stop(ctx.currentTime + 1);
}

function ring(on) {
  if (!on || ringer.timer) {
    if (!on && ringer.timer) { clearInterval(ringer.timer); ringer.timer = 0; }
    return;
  }
  try {
    ringer.ctx ??= new AudioContext();
    ringer.ctx.resume().catch(() => {});
    ringBeep();
    ringer.timer = setInterval(ringBeep, 5000);
  } catch { /* no WebAudio: the status line still pulses */ }
}

/** Restart the trail (a new call, the phone switched on), then render. */
function phoneTrailFrom() {
  phone.seen = [];
  $('#phone-status').dataset.state = '';
}

function phoneMsg(text, ok = false) {
  msg('#phone-msg', text, ok);
}

const MIC_ERRORS = {
  NotAllowedError: '麦克风权限被拒绝:请点击地址栏左侧的锁形图标,把"麦克风"设为"允许",然后再次接听。 Microphone access was denied: click the lock icon left of the address bar, set Microphone to Allow, then answer again.',
  NotFoundError: '未找到麦克风:请接上耳麦后在上方选择。 No microphone found: plug in a headset and choose it above.',
  NotReadableError: '麦克风被其他程序占用。 The microphone is in use by another program.',
  OverconstrainedError: '所选麦克风已不可用,请重新选择。 The chosen microphone is gone: choose another one above.',
  NotSupportedError: '此页面无法使用麦克风(需要 https 或 localhost)。 This page cannot use a microphone (it needs https or localhost).',
};

function showMicError(detail) {
  const box = $('#phone-mic-error');
  box.dataset.error = detail.name;
  box.textContent = MIC_ERRORS[detail.name] || `麦克风错误 microphone error: ${detail.name}: ${detail.message}`;
  box.classList.remove('hidden');
}

function clearMicError() {
  const box = $('#phone-mic-error');
  box.textContent = '';
  delete box.dataset.error;
  box.classList.add('hidden');
}

async function fillMicrophones() {
  const sel = $('#phone-mic');
  if (!phone.Softphone || !sel) return;
  let mics = [];
  try { mics = await phone.Softphone.microphones(); } catch { /* none listed */ }
  const want = sel.value || localStorage.getItem(PHONE_MIC) || '';
  sel.replaceChildren(el('option', { value: '' }, '默认麦克风 default microphone'),
    ...mics.filter((m) => m.deviceId && m.deviceId !== 'default')
      .map((m, i) => el('option', { value: m.deviceId }, m.label || `麦克风 microphone ${i + 1}`)));
  sel.value = [...sel.options].some((o) => o.value === want) ? want : '';
}

async function chooseMicrophone() {
  const id = $('#phone-mic').value;
  localStorage.setItem(PHONE_MIC, id);
  clearMicError();
  try {
    await phone.ua?.selectMicrophone(id);
  } catch { /* shown by mic_error */ }
}

/** The hotline call to hold: the one the phone's INVITE named, else the desk's current call. */
function holdTarget() {
  if (phone.call?.hotlineCall) return phone.call.hotlineCall;
  return st.current && st.current.phase === 'talking' ? st.current.id : null;
}

/** Waits for softphone.js (loaded when the panel is built); false, with the error shown, if it failed. */
async function softphoneLoaded() {
  try {
    ({ Softphone: phone.Softphone } = await phone.module);
    return true;
  } catch (e) {
    phone.registration = 'error';
    phone.error = `话机模块未加载 the phone module did not load: ${e.message}`;
    renderPhone();
    return false;
  }
}

async function switchPhone(on) {
  localStorage.setItem(PHONE_ENABLED, on ? '1' : '0');
  if (on) await phoneOn();
  else await phoneOff();
}

async function phoneOn() {
  if (phone.ua) return;
  phoneMsg('', true);
  if (!phonePassword) {
    phone.needPassword = true;
    renderPhone();
    $('#phone-password').focus();
    return;
  }
  phone.needPassword = false;
  if (!(await softphoneLoaded())) return;
  if (phone.ua) return; // switched on twice while the module loaded
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ua = new phone.Softphone({ url: `${proto}://${location.host}/sip`, user: me.id, password: phonePassword, domain: location.hostname });
  phone.ua = ua;
  phone.registration = 'registering';
  phoneTrailFrom();
  // Events of a phone switched off since are stale.
  const on = (type, fn) => ua.addEventListener(type, (e) => { if (phone.ua === ua) fn(e.detail); });
  on('registered', () => {
    phone.registration = 'registered';
    phoneMsg('', true);
    renderPhone();
  });
  on('unregistered', () => {
    phone.registration = 'registering';
    renderPhone();
  });
  on('connection', (d) => {
    if (d.state === 'closed') phoneMsg('连接断开,正在重连… connection lost, reconnecting', false);
  });
  on('registration_failed', (d) => {
    if (!d.final) {
      // Not final (server error, timeout): the phone tries again by itself.
      phoneMsg(`注册失败,稍后重试 registration failed (${d.status} ${d.reason}); retrying`, false);
      return;
    }
    phone.ua = null;
    phoneMsg('', true);
    phone.registration = 'error';
    phone.error = `注册失败 registration failed: ${d.status} ${d.reason}`;
    if (d.status === 401 || d.status === 403 || d.status === 407) {
      // Most likely a wrong password: forget it and ask.
      phonePassword = null;
      phone.error += ' — 请检查密码 check your password';
      phone.needPassword = true;
    }
    renderPhone();
  });
  on('incoming', (d) => {
    phone.call = { caller: d.caller, hotlineCall: d.hotlineCall, customer: d.customer, phase: 'ringing', answering: false };
    phone.held = false;
    phoneMsg('', true);
    clearMicError();
    phoneTrailFrom();
    renderPhone();
    if (phoneParams.get('autoanswer') === '1') setTimeout(phoneAnswer, 300);
  });
  on('connected', () => {
    if (phone.call) phone.call.phase = 'incall';
    renderPhone();
    fillMicrophones(); // labels are known once the microphone was allowed
  });
  on('ended', (d) => {
    phone.call = null;
    phone.held = false;
    phone.endedAt = Date.now();
    phone.endedText = ENDED_TEXT[d.cause] || d.cause;
    renderPhone();
    setTimeout(renderPhone, PHONE_LINGER_MS + 50);
  });
  on('mic_error', showMicError);
  renderPhone();
  ua.start().catch(() => { /* reported by the events above */ });
}

async function phoneOff() {
  const ua = phone.ua;
  phone.ua = null;
  phone.call = null;
  phone.needPassword = false;
  phone.registration = 'off';
  phone.error = '';
  phoneMsg('', true);
  phoneTrailFrom();
  renderPhone();
  if (ua) await ua.stop();
}

async function phoneAnswer() {
  const c = phone.call;
  if (!phone.ua || !c || c.phase !== 'ringing' || c.answering) return;
  c.answering = true;
  clearMicError();
  renderPhone();
  try {
    await phone.ua.answer({ deviceId: $('#phone-mic').value || undefined });
  } catch (e) {
    // Microphone problems came as mic_error; say what else went wrong.
    if (!$('#phone-mic-error').dataset.error) phoneMsg(`接听失败 answer failed: ${e.message}`, false);
  }
  c.answering = false;
  renderPhone();
}

async function phoneHold() {
  const id = holdTarget();
  if (!id) return;
  const hold = !phone.held;
  $('#phone-hold').disabled = true;
  try {
    const r = await api(`/api/calls/${encodeURIComponent(id)}/hold`, { method: 'POST', body: { hold } });
    phone.held = Boolean(r.held);
    phoneMsg(phone.held ? '客户已保持(听等待音乐) the caller is on hold' : '已恢复通话 back with the caller', true);
  } catch (e) {
    phoneMsg(`${hold ? '保持' : '恢复'}失败 ${hold ? 'hold' : 'resume'} failed: ${e.message}`, false);
  }
  renderPhone();
}

function phoneDtmf(key) {
  if (!phone.ua?.sendDtmf(key)) return;
  const shown = $('#phone-dtmf');
  shown.textContent = (shown.textContent + key).slice(-24);
}

async function initPhone() {
  const keypad = el('div', { class: 'keypad', id: 'phone-keypad' },
    PHONE_KEYS.map((k) => el('button', { class: 'secondary', id: `phone-key-${PHONE_KEY_IDS[k] || k}`, 'data-key': k, disabled: true, onclick: () => phoneDtmf(k) }, k)));
  $('#phone-panel').replaceChildren(
    el('div', { class: 'row' },
      el('h2', { style: 'margin:0' }, '浏览器话机 Browser phone'),
      el('label', { class: 'switch', style: 'margin:0 0 0 auto' },
        el('input', { type: 'checkbox', id: 'phone-enable', onchange: (e) => switchPhone(e.target.checked) }),
        ' 启用 Enable')),
    el('div', { id: 'phone-status', class: 'phone-status', role: 'status', 'data-state': 'off', 'data-seen': '' }, '未启用 off'),
    el('form', {
      id: 'phone-password-form', class: 'row hidden',
      onsubmit: (e) => {
        e.preventDefault();
        phonePassword = $('#phone-password').value || null;
        $('#phone-password').value = '';
        phone.needPassword = false;
        phoneOn();
      },
    },
      el('input', { id: 'phone-password', type: 'password', autocomplete: 'current-password', placeholder: '登录密码 your desk password' }),
      el('button', { type: 'submit', id: 'phone-password-submit' }, '启用 Enable')),
    el('label', { for: 'phone-mic' }, '麦克风 Microphone'),
    el('select', { id: 'phone-mic', style: 'width:100%', onchange: chooseMicrophone }, el('option', { value: '' }, '默认麦克风 default microphone')),
    el('div', { class: 'row', style: 'margin-top:10px' },
      el('button', { id: 'phone-answer', class: 'answer', disabled: true, onclick: phoneAnswer }, '接听 Answer'),
      el('button', { id: 'phone-reject', class: 'danger', disabled: true, onclick: () => phone.ua?.reject(486) }, '拒接 Reject'),
      el('button', { id: 'phone-hangup', class: 'danger', disabled: true, onclick: () => phone.ua?.hangup() }, '挂断 Hang up'),
      el('button', { id: 'phone-hold', class: 'secondary', disabled: true, onclick: phoneHold }, '保持 Hold'),
      el('button', { id: 'phone-mute', class: 'secondary', disabled: true, onclick: () => { phone.ua?.setMuted(!phone.ua.muted); renderPhone(); } }, '静音 Mute')),
    el('div', { class: 'row', style: 'margin-top:10px;align-items:flex-start' },
      keypad,
      el('div', { class: 'small muted' }, '按键 keys sent:', el('div', { id: 'phone-dtmf', class: 'dtmf-sent' }))),
    el('div', { id: 'phone-mic-error', class: 'msg err hidden', role: 'alert' }),
    el('div', { id: 'phone-msg', class: 'msg' }));
  phone.seen = ['off'];
  $('#phone-status').dataset.seen = 'off';
  // Loaded here, not imported at the top: supervisors never need it, and a
  // desk without the module still works.
  phone.module = import('./softphone.js');
  if (!(await softphoneLoaded())) return;
  await fillMicrophones();
  navigator.mediaDevices?.addEventListener?.('devicechange', fillMicrophones);
  // Best effort: unregister when the desk goes away (the server also drops a closed flow).
  addEventListener('pagehide', () => { phone.ua?.stop(); });
  if (phoneParams.get('phone') === '1' || localStorage.getItem(PHONE_ENABLED) === '1') await phoneOn();
  else renderPhone();
}

setInterval(() => {
  if (st.since) $('#my-since').textContent = `已持续 ${dur(now() - st.since)}`;
}, 1000);

try {
  st.scripts = await (await fetch('/web/scripts.json')).json();
} catch { /* the desk works without scripts */ }
connectEvents(onMessage, setConn);
loadCallbacks();
loadTasks();
setInterval(loadTasks, 30000);
if (me.role === 'agent') initPhone();

