// Dashboard: cases by status, Dice of AI vs the current label per case and per model version,
// editing time per case (from /api/metrics/summary), and training curves of jobs when a job
// reports them in its result.
import { Chart, BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Tooltip, Legend } from 'chart.js'
import type { AppContext } from './main'
import { api, type Job } from './api'
import { h, fmtNum, toast } from './dom'

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Tooltip, Legend)
Chart.defaults.color = '#aab4c3'
Chart.defaults.borderColor = 'rgba(255,255,255,0.08)'
Chart.defaults.font.family = 'system-ui, sans-serif'

const STATUS_COLORS: Record<string, string> = {
  new: '#6b7a90',
  presegmented: '#5b8def',
  in_progress: '#e0a93b',
  submitted: '#a070e0',
  validated: '#4caf7d',
  rejected: '#e05a5a'
}

interface Summary {
  cases_by_status: Record<string, number>
  // final_ms: when the current label was saved (ms since 1970), the time axis of the Dice trend
  cases: { case_id: number; name: string; status: string; editing_seconds: number; dice_ai_vs_current: number | null; model: string | null; final_ms?: number | null }[]
  per_model: { model: string; mean_dice: number; cases: number }[]
  mean_editing_seconds: number | null
  total_cases: number
}

export async function renderDashboard(ctx: AppContext): Promise<void> {
  let s: Summary
  try {
    s = (await api.metrics()) as unknown as Summary
  } catch (e) {
    toast('Could not load metrics: ' + (e as Error).message, 'error')
    return
  }
  const charts: Chart[] = []
  ctx.onLeave(() => charts.forEach((c) => c.destroy()))
  const card = (title: string, testid: string, body: HTMLElement) => h('div.card', { testid }, h('h3', {}, title), body)
  const canvasIn = () => h('div.chart-box', {}, h('canvas'))

  const kpis = h(
    'div.kpis',
    {},
    h('div.kpi', {}, h('span.kpi-v', {}, String(s.total_cases)), h('span.kpi-l', {}, 'cases')),
    h('div.kpi', {}, h('span.kpi-v', {}, String(s.cases_by_status.validated ?? 0)), h('span.kpi-l', {}, 'validated')),
    h('div.kpi', {}, h('span.kpi-v', {}, s.mean_editing_seconds === null ? '—' : `${fmtNum(s.mean_editing_seconds / 60, 1)} min`), h('span.kpi-l', {}, 'mean editing time')),
    h('div.kpi', {}, h('span.kpi-v', {}, s.per_model.length ? fmtNum(s.per_model.reduce((a, m) => a + m.mean_dice * m.cases, 0) / Math.max(1, s.per_model.reduce((a, m) => a + m.cases, 0)), 3) : '—'), h('span.kpi-l', {}, 'mean Dice AI vs final'))
  )
  const c1 = canvasIn()
  const c2 = canvasIn()
  const c3 = canvasIn()
  const c4 = canvasIn()
  const c5 = canvasIn()
  const c6 = canvasIn()
  const grid = h(
    'div.dash-grid',
    {},
    card('Cases by status', 'chart-status', c1),
    card('Dice of AI vs final label, per case', 'chart-dice', c2),
    card('Mean Dice per model version', 'chart-models', c3),
    card('Dice of AI vs final over time, per model version', 'chart-dice-time', c6),
    card('Editing time per case (min)', 'chart-editing', c4),
    card('Training curves', 'chart-training', c5)
  )
  ctx.main.append(h('section.dashboard', { testid: 'dashboard' }, h('h2', {}, 'Dashboard'), kpis, grid))

  const statuses = Object.keys(STATUS_COLORS)
  const common = { responsive: true, maintainAspectRatio: false, animation: false as const, plugins: { legend: { display: false } } }
  charts.push(
    new Chart(c1.querySelector('canvas')!, {
      type: 'bar',
      data: { labels: statuses.map((x) => x.replace('_', ' ')), datasets: [{ data: statuses.map((x) => s.cases_by_status[x] ?? 0), backgroundColor: statuses.map((x) => STATUS_COLORS[x]) }] },
      options: { ...common, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    })
  )
  const withDice = s.cases.filter((c) => c.dice_ai_vs_current !== null)
  charts.push(
    new Chart(c2.querySelector('canvas')!, {
      type: 'bar',
      data: { labels: withDice.map((c) => c.name), datasets: [{ data: withDice.map((c) => c.dice_ai_vs_current!), backgroundColor: '#5b8def' }] },
      options: { ...common, scales: { y: { min: 0, max: 1 } } }
    })
  )
  charts.push(
    new Chart(c3.querySelector('canvas')!, {
      type: 'bar',
      data: { labels: s.per_model.map((m) => `${m.model} (n=${m.cases})`), datasets: [{ data: s.per_model.map((m) => m.mean_dice), backgroundColor: '#4caf7d' }] },
      options: { ...common, scales: { y: { min: 0, max: 1 } } }
    })
  )
  // Dice over time: one line per model version, a point per case at the time of its current label.
  const PALETTE = ['#4caf7d', '#5b8def', '#e0a93b', '#a070e0', '#e05a5a', '#4cc3c7']
  const byModel = new Map<string, { x: number; y: number; name: string }[]>()
  for (const c of withDice)
    if (c.model && c.final_ms) {
      if (!byModel.has(c.model)) byModel.set(c.model, [])
      byModel.get(c.model)!.push({ x: c.final_ms, y: c.dice_ai_vs_current!, name: c.name })
    }
  if (!byModel.size) c6.replaceWith(h('p.muted', {}, 'No case has both an AI label and a final label yet.'))
  else {
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ')
    charts.push(
      new Chart(c6.querySelector('canvas')!, {
        type: 'line',
        data: {
          datasets: [...byModel.entries()].map(([model, pts], i) => ({
            label: model,
            data: pts.sort((a, b) => a.x - b.x),
            borderColor: PALETTE[i % PALETTE.length],
            backgroundColor: PALETTE[i % PALETTE.length],
            pointRadius: 3
          }))
        },
        options: {
          ...common,
          plugins: {
            legend: { display: true },
            tooltip: { callbacks: { label: (it) => { const p = it.raw as { y: number; name: string }; return `${it.dataset.label}: ${p.name} Dice ${p.y.toFixed(3)}` } } }
          },
          scales: { x: { type: 'linear', ticks: { callback: (v) => day(Number(v)), maxTicksLimit: 4 } }, y: { min: 0, max: 1 } }
        }
      })
    )
  }
  const edited = s.cases.filter((c) => c.editing_seconds > 0)
  charts.push(
    new Chart(c4.querySelector('canvas')!, {
      type: 'bar',
      data: { labels: edited.map((c) => c.name), datasets: [{ data: edited.map((c) => c.editing_seconds / 60), backgroundColor: '#e0a93b' }] },
      options: { ...common, scales: { y: { beginAtZero: true } } }
    })
  )
  // Training jobs whose result carries a loss curve ({"curve": [{"epoch", "train_loss", "val_dice"}...]}).
  const jobs = await api.jobs('type=train&limit=20').catch(() => [] as Job[])
  const curves = jobs
    .map((j) => ({ j, curve: ((j as unknown as { result?: { curve?: { epoch: number; train_loss?: number; val_dice?: number }[] } }).result?.curve ?? []) }))
    .filter((x) => x.curve.length)
  if (!curves.length) c5.replaceWith(h('p.muted', {}, 'No training job has reported a curve yet.'))
  else
    charts.push(
      new Chart(c5.querySelector('canvas')!, {
        type: 'line',
        data: {
          datasets: curves.flatMap(({ j, curve }, i) => [
            { label: `job ${j.id} train loss`, data: curve.filter((p) => p.train_loss !== undefined).map((p) => ({ x: p.epoch, y: p.train_loss! })), borderColor: '#e05a5a', backgroundColor: '#e05a5a', borderDash: i ? [4, 3] : [] },
            { label: `job ${j.id} val Dice`, data: curve.filter((p) => p.val_dice !== undefined).map((p) => ({ x: p.epoch, y: p.val_dice! })), borderColor: '#4caf7d', backgroundColor: '#4caf7d', borderDash: i ? [4, 3] : [] }
          ])
        },
        options: { ...common, plugins: { legend: { display: true } }, scales: { x: { type: 'linear', title: { display: true, text: 'epoch' }, ticks: { precision: 0 } } } }
      })
    )
}
