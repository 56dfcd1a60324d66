// Tiny DOM helpers: h('div.cls', {attrs}, children) and a toast area.
type Child = Node | string | number | null | undefined | false
export type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>

export function h<K extends keyof HTMLElementTagNameMap>(tagAndClass: K | `${K}.${string}`, attrs?: Attrs, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K]
export function h(tagAndClass: string, attrs?: Attrs, ...children: (Child | Child[])[]): HTMLElement
export function h(tagAndClass: string, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElement {
  const [tag, ...classes] = tagAndClass.split('.')
  const el = document.createElement(tag)
  if (classes.length) el.className = classes.join(' ')
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v as EventListener)
    else if (k === 'testid') el.setAttribute('data-testid', String(v))
    else if (k === 'value' && 'value' in el) (el as unknown as HTMLInputElement).value = String(v)
    else if (v === true) el.setAttribute(k, '')
    else el.setAttribute(k, String(v))
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild)
}

let toastBox: HTMLElement | null = null
export function toast(message: string, kind: 'info' | 'error' | 'ok' = 'info', ms = 4000): void {
  if (!toastBox) {
    toastBox = h('div.toasts', { 'aria-live': 'polite' })
    document.body.append(toastBox)
  }
  const t = h('div.toast.' + kind, { testid: 'toast' }, message)
  toastBox.append(t)
  setTimeout(() => t.remove(), ms)
}

export function fmtTime(ms: number): string {
  if (!ms) return '—'
  const d = new Date(ms)
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

export function fmtAgo(ms: number): string {
  if (!ms) return '—'
  const s = Math.max(0, (Date.now() - ms) / 1000)
  if (s < 60) return 'just now'
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return fmtTime(ms)
}

export function fmtNum(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits)
}
