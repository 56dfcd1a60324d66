// Models: the registered model versions (GET /api/models) with their modality, channels and the
// figures their bundle reports; an admin activates a version (POST /api/models/{id}/activate);
// a reviewer or admin fine-tunes a version on the validated cases (POST /api/jobs, type "train")
// and follows the job's progress over its event stream, with cancel. Which actions are offered
// follows the roles the server declares for those routes (`x-roles` in /api/openapi.json).
import type { AppContext } from './main'
import { api, findRouteWithRoles, getJson, jobFinished, postJson, type Job } from './api'
import { h, clear, toast, fmtTime, fmtNum } from './dom'

export interface ModelItem {
  id: number
  name: string
  version: string
  active: boolean
  created_ms: number
  metadata: {
    modality?: string
    channels?: string[]
    dims?: number
    labels?: Record<string, number>
    patch_size?: number[]
    target_spacing_mm?: number[]
    created?: string // when the bundle was exported (ISO 8601)
    training?: Record<string, unknown>
    // Held-out evaluation, when a bundle reports one (not every server or bundle does).
    evaluation?: Record<string, unknown>
    held_out?: Record<string, unknown>
  }
}

interface TrainJob extends Job {
  result?: { version?: string; bundle?: string; epochs_done?: number; best_pseudo_dice?: number; curve?: unknown[] }
  params?: { model?: string }
}

function allowed(roles: string[] | null | undefined, role: string): boolean {
  return !roles || roles.includes('public') || roles.includes(role)
}

// The held-out figures of a bundle (bundle.json "evaluation", written by
// scripts/evaluate_model.sh --record) as label/value pairs, or null when it reports none.
const HELD_OUT_FIELDS: [string, string, number][] = [
  ['patients_mean_dice', 'Dice', 3],
  ['patients_median_dice', 'median', 3],
  ['patients_mean_hd95_mm', 'HD95', 1],
  ['patients_mean_lesion_f1', 'lesion F1', 2]
]
function heldOut(m: ModelItem): { text: string; title: string } | null {
  const src = (m.metadata.evaluation ?? m.metadata.held_out) as Record<string, unknown> | undefined
  if (!src || typeof src !== 'object') return null
  const parts: string[] = []
  for (const [key, label, digits] of HELD_OUT_FIELDS) if (typeof src[key] === 'number') parts.push(`${label} ${fmtNum(src[key] as number, digits)}`)
  if (!parts.length)
    for (const [k, v] of Object.entries(src)) if (typeof v === 'number') parts.push(`${k.replace(/_/g, ' ')} ${fmtNum(v, 3)}`)
  if (!parts.length) return null
  const n = typeof src.patients === 'number' ? src.patients : src.cases
  const title = `${n ?? '?'} held-out patients${src.dataset ? ' of ' + String(src.dataset) : ''}${src.measured ? ', measured ' + String(src.measured) : ''}${src.settings ? ', predict ' + String(src.settings) : ''}; HD95 as the dataset's spacing`
  return { text: parts.join(', ') + (n !== undefined ? ` (n=${n})` : ''), title }
}

export async function renderModels(ctx: AppContext): Promise<void> {
  const [activateRoute, jobsRoute] = await Promise.all([findRouteWithRoles('POST', /^\/api\/models\/\{[a-z_]+\}\/activate$/), findRouteWithRoles('POST', /^\/api\/jobs$/)])
  const canActivate = !!activateRoute && allowed(activateRoute.roles, ctx.user.role)
  const canTrain = !!jobsRoute && allowed(jobsRoute.roles, ctx.user.role)

  const tbody = h('tbody', { testid: 'models' })
  const epochs = h('input', { type: 'number', testid: 'train-epochs', min: '1', max: '1000', step: '1', value: '5', title: 'Epochs of fine-tuning (1..1000)' })
  const iterations = h('input', { type: 'number', testid: 'train-iterations', min: '1', max: '10000', step: '1', placeholder: 'plans', title: 'Iterations per epoch (1..10000; empty: as in the model\'s plans.json)' })
  const budget = h('input', { type: 'text', testid: 'train-budget', value: '20m', size: '5', title: 'Time budget: training stops after the epoch that crosses it (e.g. 20m, 1h, 900s)' })
  const validatedInfo = h('span.muted', { testid: 'train-validated' })
  const jobsBox = h('div.jobs', { testid: 'train-jobs' }, h('p.muted.small.no-jobs', {}, 'No training job yet.'))
  const trainCard = h(
    'div.card.train-card',
    {},
    h('h3', {}, 'Fine-tune on validated cases'),
    canTrain
      ? h(
          'div.train-form',
          {},
          h('label.inline-l', {}, 'Epochs ', epochs),
          h('label.inline-l', {}, 'Iterations/epoch ', iterations),
          h('label.inline-l', {}, 'Time budget ', budget),
          validatedInfo,
          h('p.muted.small', {}, 'Use "Fine-tune" on a model version: its weights are trained further on the validated cases (current labels) and the result is registered as a new, inactive version. Only cases the model can read are used: its channels, or uploads of its modality with as many channels.')
        )
      : h('p.muted', { testid: 'train-not-allowed' }, `Fine-tuning needs the role ${jobsRoute?.roles?.join(' or ') ?? 'reviewer or admin'}; you are ${ctx.user.role}.`),
    h('h3', {}, 'Training jobs'),
    jobsBox
  )
  const table = h(
    'table.models-table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'Model'),
        h('th', {}, 'Version'),
        h('th', {}, 'Active'),
        h('th', {}, 'Modality'),
        h('th', {}, 'Channels'),
        h('th', {}, 'Net'),
        h('th', {}, 'Created'),
        h('th', { title: 'Best pseudo Dice on fixed validation patches during training (not full cases)' }, 'Val. pseudo Dice'),
        h('th', { title: 'Evaluation on held-out cases, when the bundle reports it' }, 'Held-out'),
        canActivate || canTrain ? h('th', {}, 'Actions') : null
      )
    ),
    tbody
  )
  ctx.main.append(
    h(
      'section.models',
      { testid: 'models-screen' },
      h('div.toolbar', {}, h('h2', {}, 'Models'), h('span.muted', { testid: 'models-count' }), h('span.spacer'), canActivate ? null : h('span.muted', { testid: 'activate-not-allowed' }, 'Activating a version needs the role admin.')),
      h('div.models-layout', {}, h('div.table-wrap', {}, table), trainCard)
    )
  )

  let models: ModelItem[] = []
  async function load(): Promise<void> {
    try {
      const r = await getJson<{ items: ModelItem[] } | ModelItem[]>('/api/models')
      models = Array.isArray(r) ? r : r.items
    } catch (e) {
      toast('Could not list the models: ' + (e as Error).message, 'error')
      return
    }
    draw()
  }
  function draw(): void {
    clear(tbody)
    ctx.main.querySelector('[data-testid=models-count]')!.textContent = `${models.length} version${models.length === 1 ? '' : 's'} of ${new Set(models.map((m) => m.name)).size} model${new Set(models.map((m) => m.name)).size === 1 ? '' : 's'}`
    const sorted = [...models].sort((a, b) => a.name.localeCompare(b.name) || a.created_ms - b.created_ms || a.id - b.id)
    for (const m of sorted) {
      const md = m.metadata ?? {}
      const tr = md.training ?? {}
      const val = (tr.best_pseudo_dice_ema ?? tr.best_pseudo_dice) as number | undefined
      const ho = heldOut(m)
      const actions = h('div.actions')
      if (canActivate)
        actions.append(
          h(
            'button.small' + (m.active ? '' : '.ok'),
            { testid: 'activate-model', disabled: m.active, title: m.active ? 'This version is active' : `Make ${m.name}@${m.version} the active version of ${m.name}`, onclick: () => void activate(m) },
            m.active ? 'Active' : 'Activate'
          )
        )
      if (canTrain)
        actions.append(h('button.small', { testid: 'train-model', title: `Fine-tune ${m.name}@${m.version} on the validated cases`, onclick: () => void train(m) }, 'Fine-tune'))
      tbody.append(
        h(
          'tr' + (m.active ? '.active-model' : ''),
          { testid: 'model-row', 'data-model-id': m.id, 'data-model-name': m.name, 'data-model-version': m.version, 'data-active': m.active ? '1' : '0' },
          h('td', {}, h('span.case-name', {}, m.name)),
          h('td', {}, m.version),
          h('td', {}, m.active ? h('span.badge.st-validated', { testid: 'model-active' }, 'active') : h('span.muted', {}, '—')),
          h('td', {}, md.modality ?? '—'),
          h('td', {}, (md.channels ?? []).join(' + ') || '—'),
          h('td', { title: md.patch_size ? `patch ${md.patch_size.join('×')}, spacing ${(md.target_spacing_mm ?? []).map((x) => +x.toFixed(2)).join('×')} mm` : '' }, md.dims ? `${md.dims}D U-Net` : '—'),
          h('td', { title: `${md.training?.seconds ? `trained ${fmtNum(Number(md.training.seconds) / 3600, 1)} h, ${md.training.epochs_done ?? '?'} epochs; ` : ''}registered here ${fmtTime(m.created_ms)}` }, fmtTime(md.created ? Date.parse(md.created) || m.created_ms : m.created_ms)),
          h('td.num', {}, fmtNum(val ?? null, 3)),
          h('td', { testid: 'model-heldout' }, ho ? h('span', { title: ho.title }, ho.text) : h('span.muted', { title: 'This bundle reports no held-out evaluation (see its MODEL_CARD.md)' }, 'see model card')),
          canActivate || canTrain ? h('td', {}, actions) : null
        )
      )
    }
    if (!models.length) tbody.append(h('tr', {}, h('td.muted', { colspan: 10 }, 'No model is registered. The server registers the bundles it finds under models/ at start-up.')))
  }

  async function activate(m: ModelItem): Promise<void> {
    try {
      await postJson(activateRoute!.path.replace(/\{[a-z_]+\}/, String(m.id)), {})
      toast(`${m.name}@${m.version} is now active`, 'ok')
      await load()
    } catch (e) {
      toast(`Cannot activate ${m.name}@${m.version}: ${(e as Error).message}`, 'error')
    }
  }

  async function train(m: ModelItem): Promise<void> {
    const n = Math.round(Number(epochs.value))
    if (!Number.isFinite(n) || n < 1 || n > 1000) {
      toast('Epochs: expected a whole number from 1 to 1000', 'error')
      epochs.focus()
      return
    }
    const body: Record<string, unknown> = { type: 'train', model: m.name, version: m.version, epochs: n }
    if (iterations.value.trim() !== '') {
      const it = Math.round(Number(iterations.value))
      if (!Number.isFinite(it) || it < 1 || it > 10000) {
        toast('Iterations per epoch: expected a whole number from 1 to 10000, or empty for the plans\' value', 'error')
        iterations.focus()
        return
      }
      body.iterations = it
    }
    if (budget.value.trim() !== '') body.time_budget = budget.value.trim()
    try {
      const r = await postJson<Job | { job: Job }>('/api/jobs', body)
      const job = ('job' in r ? r.job : r) as TrainJob
      toast(`Fine-tuning ${m.name}@${m.version}: job ${job.id} queued`, 'ok')
      showJob(job, `${m.name}@${m.version}`)
    } catch (e) {
      toast(`Cannot start fine-tuning: ${(e as Error).message}`, 'error')
    }
  }

  const streams: EventSource[] = []
  ctx.onLeave(() => streams.forEach((s) => s.close()))
  const shown = new Set<number>()
  function finishText(j: TrainJob): string {
    if (j.state === 'succeeded') {
      const r = j.result ?? {}
      return `succeeded: new version ${r.version ?? '?'}${r.epochs_done !== undefined ? `, ${r.epochs_done} epochs` : ''}${r.best_pseudo_dice !== undefined ? `, pseudo Dice ${fmtNum(r.best_pseudo_dice, 3)}` : ''}`
    }
    if (j.state === 'failed') return `failed: ${j.error ?? j.message ?? 'unknown error'}`
    return j.state
  }
  function showJob(job: TrainJob, what?: string): void {
    if (shown.has(job.id)) return
    shown.add(job.id)
    const bar = h('progress', { max: '1', value: String(job.progress ?? 0) })
    const label = h('span.job-label', {}, `job ${job.id} · train ${what ?? job.params?.model ?? ''} · ${job.state}`)
    const outcome = h('span.job-outcome', { testid: 'job-outcome' })
    const cancel = h(
      'button.small',
      {
        testid: 'job-cancel',
        onclick: () =>
          api
            .cancelJob(job.id)
            .then(() => toast(`Cancel requested for job ${job.id}`, 'info'))
            .catch((e) => toast((e as Error).message, 'error'))
      },
      'Cancel'
    )
    const row = h('div.job', { testid: 'job-row', 'data-job-id': job.id, 'data-state': job.state }, label, cancel, bar, outcome)
    jobsBox.querySelector('.no-jobs')?.remove()
    jobsBox.prepend(row)
    const end = (j: TrainJob) => {
      row.dataset.state = j.state
      cancel.remove()
      bar.value = j.state === 'succeeded' ? 1 : bar.value
      outcome.textContent = finishText(j)
      outcome.classList.toggle('error', j.state === 'failed')
      if (j.state === 'succeeded') void load()
    }
    if (jobFinished(job.state)) {
      end(job)
      return
    }
    const es = new EventSource(`/api/jobs/${job.id}/events`)
    streams.push(es)
    let lastSeen: TrainJob = job
    es.addEventListener('progress', (ev) => {
      const j = JSON.parse((ev as MessageEvent).data) as TrainJob
      lastSeen = j
      // A terminal state is set by end(), together with the outcome text, so that a row whose
      // data-state says the job is over always shows its outcome.
      if (!jobFinished(j.state)) row.dataset.state = j.state
      bar.value = j.progress ?? 0
      label.textContent = `job ${j.id} · train ${what ?? j.params?.model ?? ''} · ${j.state} ${Math.round((j.progress ?? 0) * 100)}%${j.message ? ' · ' + j.message : ''}`
    })
    es.addEventListener('end', () => {
      es.close()
      // The last progress event carries the final state; read the job once more for its result.
      getJson<TrainJob>(`/api/jobs/${job.id}`)
        .then(end)
        .catch(() => end(lastSeen))
    })
  }

  await load()
  if (canTrain)
    // Training uses the validated cases that are not synthetic demo cases.
    api
      .cases('status=validated&demo=false&limit=1')
      .then((r) => {
        const n = r.total
        validatedInfo.textContent = `${n} validated case${n === 1 ? '' : 's'} to train on (demo cases are left out)`
      })
      .catch(() => undefined)
  api
    .jobs('type=train&limit=10')
    .then((jobs) => [...jobs].reverse().forEach((j) => showJob(j as TrainJob)))
    .catch(() => undefined)
}
