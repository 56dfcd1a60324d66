// Worklist: cases with pseudonym, modality, status, assignee, AI uncertainty, active-learning
// rank and last edit; sort (server side), filter by status / assignee, search by name, and
// "next case" (the server's ranking).
import type { AppContext } from './main'
import { api, type CaseItem } from './api'
import { h, clear, fmtAgo, fmtNum, toast } from './dom'

const STATUSES = ['new', 'presegmented', 'in_progress', 'submitted', 'validated', 'rejected']
const state = { sort: 'rank', order: 'asc', status: '', assignee: '', search: '' }

function statusBadge(s: string): HTMLElement {
  return h('span.badge.st-' + s, {}, s.replace('_', ' '))
}

export async function renderWorklist(ctx: AppContext): Promise<void> {
  const tbody = h('tbody')
  const count = h('span.muted', { testid: 'worklist-count' })
  const search = h('input.search', { testid: 'worklist-search', type: 'search', placeholder: 'Search cases (/)', value: state.search })
  const statusSel = h('select', { testid: 'worklist-status' }, h('option', { value: '' }, 'All statuses'), ...STATUSES.map((s) => h('option', { value: s }, s.replace('_', ' '))))
  statusSel.value = state.status
  const assigneeSel = h('select', { testid: 'worklist-assignee' }, h('option', { value: '' }, 'Anyone'), h('option', { value: 'me' }, 'Mine'), h('option', { value: 'none' }, 'Unassigned'))
  assigneeSel.value = state.assignee
  let items: CaseItem[] = []

  const columns: [string, string, string | null][] = [
    ['Case', 'name', 'name'],
    ['Modality', 'modality', null],
    ['Status', 'status', 'status'],
    ['Assignee', 'assignee', null],
    ['AI uncertainty', 'uncertainty', 'uncertainty'],
    ['AL rank', 'al_rank', 'rank'],
    ['Last edit', 'updated', 'updated']
  ]
  const headRow = h('tr')
  function drawHead(): void {
    clear(headRow)
    for (const [label, , sortKey] of columns) {
      const active = sortKey && state.sort === sortKey
      headRow.append(
        h(
          'th' + (sortKey ? '.sortable' : ''),
          {
            onclick: sortKey
              ? () => {
                  if (state.sort === sortKey) state.order = state.order === 'asc' ? 'desc' : 'asc'
                  else {
                    state.sort = sortKey
                    state.order = sortKey === 'uncertainty' || sortKey === 'updated' ? 'desc' : 'asc'
                  }
                  void load()
                }
              : null
          },
          label,
          active ? (state.order === 'asc' ? ' ▲' : ' ▼') : ''
        )
      )
    }
  }

  function draw(): void {
    clear(tbody)
    const q = state.search.toLowerCase()
    const shown = items.filter((c) => !q || c.name.toLowerCase().includes(q) || String(c.id) === q)
    for (const c of shown) {
      const modality = c.modality ?? c.image?.modality ?? '—'
      tbody.append(
        h(
          'tr.case-row',
          { testid: 'worklist-row', 'data-case-id': c.id, tabindex: 0, onclick: () => (location.hash = `#/case/${c.id}`), onkeydown: (e: Event) => (e as KeyboardEvent).key === 'Enter' && (location.hash = `#/case/${c.id}`) },
          h('td', {}, h('span.case-name', {}, c.name), c.demo ? h('span.badge.demo', { title: 'synthetic demo data' }, 'demo') : null),
          h('td', {}, modality),
          h('td', {}, statusBadge(c.status)),
          h('td', {}, c.assignee?.username ?? h('span.muted', {}, 'unassigned')),
          h('td.num', {}, uncertaintyBar(c.uncertainty)),
          h('td.num', {}, c.al_rank === null ? '—' : String(c.al_rank)),
          h('td', { title: new Date(c.updated_ms).toISOString() }, fmtAgo(c.updated_ms))
        )
      )
    }
    if (!shown.length) tbody.append(h('tr', {}, h('td.muted', { colspan: columns.length }, 'No cases match.')))
    count.textContent = `${shown.length} of ${items.length} cases`
  }

  async function load(): Promise<void> {
    const q = new URLSearchParams({ sort: state.sort, order: state.order, limit: '500' })
    if (state.status) q.set('status', state.status)
    if (state.assignee) q.set('assignee', state.assignee)
    try {
      items = (await api.cases(q.toString())).items
    } catch (e) {
      toast('Could not load the worklist: ' + (e as Error).message, 'error')
      items = []
    }
    drawHead()
    draw()
  }

  search.addEventListener('input', () => {
    state.search = search.value
    draw()
  })
  statusSel.addEventListener('change', () => {
    state.status = statusSel.value
    void load()
  })
  assigneeSel.addEventListener('change', () => {
    state.assignee = assigneeSel.value
    void load()
  })
  const next = h(
    'button.primary',
    {
      testid: 'next-case',
      title: 'Open the next case to label (n)',
      onclick: async () => {
        const r = await api.next()
        if (r.case) location.hash = `#/case/${r.case.id}`
        else toast('Nothing left to label.', 'ok')
      }
    },
    'Next case ▸'
  )
  const onKey = (e: KeyboardEvent) => {
    if ((e.target as HTMLElement).tagName === 'INPUT') return
    if (e.key === '/') {
      e.preventDefault()
      search.focus()
    } else if (e.key === 'n') next.click()
  }
  document.addEventListener('keydown', onKey)
  ctx.onLeave(() => document.removeEventListener('keydown', onKey))

  ctx.main.append(
    h(
      'section.worklist',
      {},
      h('div.toolbar', {}, h('h2', {}, 'Worklist'), search, statusSel, assigneeSel, h('span.spacer'), count, next),
      h('div.table-wrap', {}, h('table.cases', { testid: 'worklist' }, h('thead', {}, headRow), tbody))
    )
  )
  await load()
}

function uncertaintyBar(u: number | null): HTMLElement | string {
  if (u === null || u === undefined) return '—'
  const pct = Math.max(0, Math.min(1, u)) * 100
  return h('span.ubar', { title: `case uncertainty ${fmtNum(u, 3)}` }, h('span.ubar-fill', { style: `width:${pct.toFixed(0)}%` }), h('span.ubar-text', {}, fmtNum(u, 2)))
}
