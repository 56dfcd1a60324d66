// tumorlab browser UI: hash routes #/login, #/worklist, #/case/<id>, #/dashboard, #/upload, #/models.
// Everything goes through the REST API (api.ts); no patient identifiers are shown, only case
// names (pseudonyms), modalities and label statistics.
import './style.css'
import { api, type User } from './api'
import { h, clear } from './dom'
import { renderLogin } from './login'
import { renderWorklist } from './worklist'
import { renderViewer } from './viewer'
import { renderDashboard } from './dashboard'
import { renderUpload } from './upload'
import { renderModels } from './models'

export interface AppContext {
  user: User
  main: HTMLElement
  // Called by a screen to release resources (viewer: WebGL, event streams) when leaving it.
  onLeave: (fn: () => void) => void
}

const root = document.getElementById('app')!
let user: User | null = null
let leaveHandlers: (() => void)[] = []
export let routeStartMs = 0 // when the current route was entered (for load-time measurements)

function topBar(u: User): HTMLElement {
  const link = (hash: string, label: string, testid: string) => h('a.nav' + (location.hash.startsWith(hash) ? '.active' : ''), { href: hash, testid }, label)
  return h(
    'header.topbar',
    {},
    h('span.brand', {}, 'tumorlab'),
    h('nav', {}, link('#/worklist', 'Worklist', 'nav-worklist'), link('#/dashboard', 'Dashboard', 'nav-dashboard'), link('#/upload', 'Upload', 'nav-upload'), link('#/models', 'Models', 'nav-models')),
    h('span.spacer'),
    h('span.who', { testid: 'current-user' }, `${u.username} · ${u.role}`),
    h('button.ghost', { testid: 'help-open', title: 'Keyboard shortcuts (?)', onclick: () => document.dispatchEvent(new CustomEvent('tl-help')) }, '?'),
    h(
      'button.ghost',
      {
        testid: 'logout',
        onclick: async () => {
          await api.logout().catch(() => undefined)
          user = null
          location.hash = '#/login'
        }
      },
      'Log out'
    )
  )
}

async function route(): Promise<void> {
  routeStartMs = performance.now()
  for (const fn of leaveHandlers) fn()
  leaveHandlers = []
  const hash = location.hash || '#/worklist'
  // Only ask who is logged in when a session cookie pair exists (avoids a 401 on a fresh visit).
  if (!user && /(?:^|;\s*)tl_csrf=/.test(document.cookie)) user = await api.me().catch(() => null)
  clear(root)
  if (!user || hash.startsWith('#/login')) {
    root.append(
      renderLogin((u) => {
        user = u
        location.hash = '#/worklist'
      })
    )
    return
  }
  const main = h('main.screen')
  root.append(topBar(user), main)
  const ctx: AppContext = { user, main, onLeave: (fn) => leaveHandlers.push(fn) }
  const m = hash.match(/^#\/case\/(\d+)/)
  if (m) await renderViewer(ctx, Number(m[1]))
  else if (hash.startsWith('#/dashboard')) await renderDashboard(ctx)
  else if (hash.startsWith('#/upload')) await renderUpload(ctx)
  else if (hash.startsWith('#/models')) await renderModels(ctx)
  else await renderWorklist(ctx)
}

window.addEventListener('hashchange', () => void route())
void route()
