// Reports page: daily / weekly / monthly callback reports, inbound KPIs and
// complaints; tables, inline SVG bar charts, CSV download, printable.

import { api, chrome, download, dur, el, pct, requireLogin, $ } from './common.js';

const root = $('#app');
chrome('/reports');
await requireLogin(root, ['supervisor', 'admin'], '报表登录 Reports');

const pad = (n) => String(n).padStart(2, '0');
// "Today" is the call centre's day (Asia/Shanghai, as the API's periods),
// whatever the browser's zone: a local Date with Shanghai's calendar fields.
function shanghaiToday() {
  const ymd = new Intl.DateTimeFormat('en-CA', {
    timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit',
  }).format(new Date());
  const [y, m, d] = ymd.split('-').map(Number);
  return new Date(y, m - 1, d);
}
const today = shanghaiToday();
const isoDate = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
function isoWeek(d) {
  const t = new Date(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const y = t.getUTCFullYear();
  const w = Math.ceil(((t - Date.UTC(y, 0, 1)) / 86400000 + 1) / 7);
  return `${y}-W${pad(w)}`;
}

const KINDS = {
  daily: { label: '日报 Daily', params: () => ({ date: $('#p-date').value }) },
  weekly: { label: '周报 Weekly', params: () => ({ week: $('#p-week').value }) },
  monthly: { label: '月报 Monthly', params: () => ({ month: $('#p-month').value }) },
  inbound: { label: '呼入 Inbound', params: () => ({ from: $('#p-from').value, to: $('#p-to').value, sl: $('#p-sl').value }) },
  complaints: { label: '投诉 Complaints', params: () => ({}) },
};
let kind = new URLSearchParams(location.search).get('kind') || 'daily';
if (!KINDS[kind]) kind = 'daily';

function query(extra = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...KINDS[kind].params(), ...extra })) if (v) p.set(k, v);
  return `/api/reports/${kind}?${p}`;
}

/** Horizontal bar chart: rows of {label, values: [numbers]}, one colour per series. */
function barChart(title, rows, series, { max, format = String } = {}) {
  const rowH = 22, labelW = 120, width = 640, barW = width - labelW - 60;
  const top = Math.max(max ?? 0, ...rows.flatMap((r) => r.values.map((v) => v ?? 0)), 1);
  const perRow = rowH * series.length + 6;
  const height = rows.length * perRow + 24;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', title);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  add('text', { x: 0, y: 12, 'font-weight': 600 }, title);
  rows.forEach((r, i) => {
    const y0 = 20 + i * perRow;
    add('text', { x: 0, y: y0 + rowH - 6 }, r.label.length > 16 ? `${r.label.slice(0, 15)}…` : r.label);
    series.forEach((s, j) => {
      const v = r.values[j] ?? 0;
      const w = Math.max(v > 0 ? 2 : 0, (v / top) * barW);
      add('rect', { x: labelW, y: y0 + j * rowH + 3, width: w, height: rowH - 6, class: `bar ${s.cls || ''}` });
      add('text', { x: labelW + w + 4, y: y0 + j * rowH + rowH - 7 }, `${s.name ? s.name + ' ' : ''}${format(r.values[j])}`);
    });
  });
  return svg;
}

function table(id, headers, rows) {
  return el('table', { id },
    el('thead', {}, el('tr', {}, headers.map(([h, num]) => el('th', { class: num ? 'num' : '' }, h)))),
    el('tbody', {}, rows.length ? rows : [el('tr', {}, el('td', { colspan: headers.length, class: 'muted' }, '无数据 no data'))]));
}
// Report periods are Asia/Shanghai days (see the API), whatever the browser's zone.
const shanghai = (ms) => new Date(ms).toLocaleString('zh-CN', { hour12: false, timeZone: 'Asia/Shanghai' });
const td = (v, num) => el('td', { class: num ? 'num' : '' }, v ?? '–');

const RENDER = {
  daily(r) {
    return [
      el('h2', {}, `回访日报 ${r.date}`),
      barChart('完成 / 分配 completed / assigned', r.agents.map((a) => ({ label: a.agent || '(未分配)', values: [a.completed, a.assigned] })),
        [{ name: '完成' }, { name: '分配', cls: 'alt' }]),
      table('report-table', [['回访员 agent'], ['分配 assigned', 1], ['完成 completed', 1], ['电话 calls', 1], ['服务态度 attitude', 1], ['清理 yes/no', 1], ['收费相符 yes/no', 1], ['备注 remarks']],
        r.agents.map((a) => el('tr', {}, td(a.agent || '(未分配)'), td(a.assigned, 1), td(a.completed, 1), td(a.calls, 1), td(a.attitude_avg, 1),
          td(`${a.cleaned_yes}/${a.cleaned_no}`, 1), td(`${a.fees_ok_yes}/${a.fees_ok_no}`, 1), td(a.remarks.join('; '))))),
    ];
  },
  weekly(r) {
    return [
      el('h2', {}, `回访周报 ${r.week}`),
      barChart('满意度 satisfaction', r.lines.map((l) => ({ label: `${l.agent} ${l.region}`, values: [l.satisfaction[0] + l.satisfaction[1], l.satisfaction[2], l.satisfaction[3] + l.satisfaction[4]] })),
        [{ name: '满意' }, { name: '一般', cls: 'alt' }, { name: '不满意', cls: 'bad' }]),
      table('report-table', [['回访员 agent'], ['区域 region'], ['完成 completed', 1], ...r.levels.map((l) => [l, 1])],
        r.lines.map((l) => el('tr', {}, td(l.agent), td(l.region || '–'), td(l.completed, 1), l.satisfaction.map((n) => td(n, 1))))),
    ];
  },
  monthly(r) {
    return [
      el('h2', {}, `回访月报 ${r.month}`),
      el('p', { id: 'worst-regions' }, '最差区域 worst regions: ', el('span', { class: 'worst' }, r.worst_regions.join('、') || '–')),
      barChart('满意率 satisfied share', r.regions.map((g) => ({ label: g.region || '(未知)', values: [g.satisfied_share, g.completion_rate, g.timeliness_rate] })),
        [{ name: '满意' }, { name: '完成', cls: 'alt' }, { name: '及时', cls: 'bad' }], { max: 1, format: pct }),
      table('report-table', [['区域 region'], ['任务 tasks', 1], ['完成 completed', 1], ['完成率', 1], ['及时率', 1], ['满意率', 1], ...r.levels.map((l) => [l, 1])],
        r.regions.map((g) => el('tr', { class: g.worst ? 'worst' : '' }, td(g.region || '(未知)'), td(g.tasks, 1), td(g.completed, 1), td(pct(g.completion_rate), 1),
          td(pct(g.timeliness_rate), 1), td(pct(g.satisfied_share), 1), g.satisfaction.map((n) => td(n, 1))))),
    ];
  },
  inbound(r) {
    const line = (scope, l) => el('tr', { 'data-scope': scope, 'data-name': l.name }, td(scope === 'queue' ? '队列' : scope === 'agent' ? '坐席' : '合计'), td(l.name),
      td(l.offered, 1), td(l.answered, 1), td(l.abandoned, 1), td(pct(l.service_level), 1), td(pct(l.abandon_rate), 1), td(dur(l.avg_wait_ms), 1), td(dur(l.avg_talk_ms), 1));
    return [
      el('h2', {}, `呼入指标 ${shanghai(r.from)} – ${shanghai(r.to)} (北京时间, SL ${r.sl_secs} s)`),
      barChart('队列 queues: 接通 / 放弃', r.queues.map((q) => ({ label: q.name, values: [q.answered, q.abandoned] })), [{ name: '接通' }, { name: '放弃', cls: 'bad' }]),
      table('report-table', [['范围 scope'], ['名称 name'], ['呼入 offered', 1], ['接通 answered', 1], ['放弃 abandoned', 1], ['服务水平 SL', 1], ['放弃率', 1], ['平均等待', 1], ['平均通话', 1]],
        [...r.queues.map((q) => line('queue', q)), ...r.agents.map((a) => line('agent', a)), line('total', r.total)]),
    ];
  },
  complaints(r) {
    return [
      el('h2', {}, `投诉时效 Complaints: 按时 ${r.on_time} · 超时 ${r.overdue}`),
      barChart('按部门 by department', r.departments.map((d) => ({ label: d.department || '(未指定)', values: [d.closed_on_time + d.open_on_time, d.closed_late + d.open_overdue] })),
        [{ name: '按时' }, { name: '超时', cls: 'bad' }]),
      table('report-table', [['部门 department'], ['总数', 1], ['按时办结', 1], ['超时办结', 1], ['处理中', 1], ['已超时', 1]],
        r.departments.map((d) => el('tr', {}, td(d.department || '(未指定)'), td(d.total, 1), td(d.closed_on_time, 1), td(d.closed_late, 1), td(d.open_on_time, 1), td(d.open_overdue, 1)))),
      el('h2', { style: 'margin-top:16px' }, '已超时未结 Overdue open complaints'),
      table('overdue-table', [['案件 case'], ['客户 customer'], ['部门'], ['负责人 owner'], ['期限 deadline'], ['内容 description']],
        r.overdue_open.map((c) => el('tr', { class: 'worst' }, td(c.id), td(c.customer_id), td(c.department || '–'), td(c.owner || '–'), td(shanghai(c.deadline)), td(c.description)))),
    ];
  },
};

async function load() {
  const out = $('#report');
  out.replaceChildren(el('p', { class: 'muted' }, '加载中 loading…'));
  try {
    const r = await api(query());
    out.replaceChildren(...RENDER[kind](r));
    out.dataset.loaded = kind;
  } catch (e) {
    out.replaceChildren(el('p', { class: 'msg err', id: 'report-error' }, e.message));
  }
}

function select(k) {
  kind = k;
  history.replaceState(null, '', `?kind=${k}`);
  for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('on', b.dataset.kind === k);
  for (const p of document.querySelectorAll('[data-for]')) p.classList.toggle('hidden', !p.dataset.for.split(' ').includes(k));
  load();
}

const field = (forKinds, label, input) => el('span', { 'data-for': forKinds }, el('label', { for: input.id }, label), input);
root.replaceChildren(
  el('h1', {}, '报表 Reports'),
  el('div', { class: 'panel noprint' },
    el('div', { class: 'tabs row' }, Object.entries(KINDS).map(([k, v]) => el('button', { class: 'secondary', 'data-kind': k, id: `tab-${k}`, onclick: () => select(k) }, v.label))),
    el('div', { class: 'row', style: 'margin-top:8px; align-items:flex-end' },
      field('daily', '日期 date', el('input', { id: 'p-date', type: 'date', value: isoDate(today) })),
      field('weekly', '周 week', el('input', { id: 'p-week', value: isoWeek(today), size: 9 })),
      field('monthly', '月 month', el('input', { id: 'p-month', type: 'month', value: isoDate(today).slice(0, 7) })),
      field('inbound', '从 from', el('input', { id: 'p-from', type: 'date', value: isoDate(today) })),
      field('inbound', '到 to', el('input', { id: 'p-to', type: 'date', value: isoDate(today) })),
      field('inbound', '服务水平秒 SL s', el('input', { id: 'p-sl', type: 'number', min: 1, max: 3600, value: 20, style: 'width:80px' })),
      el('button', { id: 'run', onclick: load }, '查询 Show'),
      el('button', { id: 'csv', class: 'secondary', onclick: () => download(query({ format: 'csv' }), `${kind}.csv`).catch((e) => alert(e.message)) }, '下载 CSV'),
      el('button', { id: 'print', class: 'secondary', onclick: () => window.print() }, '打印 Print'))),
  el('div', { class: 'panel', id: 'report', style: 'margin-top:16px' }));
select(kind);
