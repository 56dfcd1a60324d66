// The "?" overlay: every keyboard shortcut.
import { h } from './dom'

const SHORTCUTS: [string, string][] = [
  ['V', 'Navigate (crosshair)'],
  ['B', 'Brush (radius in mm; 3D sphere option)'],
  ['E', 'Eraser'],
  ['T', 'Threshold brush (paints only voxels within the intensity range)'],
  ['G', 'Region grow from a click (in the slice, or 3D)'],
  ['[ / ]', 'Smaller / larger brush'],
  ['F', 'Fill holes in the current slice'],
  ['I', 'Remove small islands'],
  ['P', 'Interpolate between edited slices'],
  ['Ctrl+Z', 'Undo'],
  ['Ctrl+Shift+Z / Ctrl+Y', 'Redo'],
  ['Ctrl+S', 'Save a new revision'],
  ['↑ / ↓, wheel', 'Next / previous slice'],
  ['Page Up / Down', '10 slices'],
  ['1 … 6', 'Axial, coronal, sagittal, MPR, MPR + 3D, 3D'],
  ['W', 'Next window/level preset'],
  ['Shift+drag, right drag', 'Window / level'],
  ['Ctrl+drag, middle drag', 'Pan'],
  ['+ / -', 'Zoom in / out'],
  ['R', 'Reset zoom and window'],
  ['C', 'Next channel (e.g. FLAIR / T1c)'],
  ['A / L / U', 'Toggle AI label / working label / uncertainty'],
  ['X', 'Compare AI label and working label'],
  ['N (worklist)', 'Next case'],
  ['/ (worklist)', 'Search'],
  ['?', 'This help'],
  ['Esc', 'Close help / back to the worklist']
]

export function showHelp(): void {
  if (document.querySelector('.help-overlay')) return
  const close = () => {
    overlay.remove()
    document.removeEventListener('keydown', onKey, true)
  }
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape' || e.key === '?') {
      e.preventDefault()
      e.stopPropagation()
      close()
    }
  }
  const overlay = h(
    'div.help-overlay',
    { testid: 'help-overlay', onclick: (e: Event) => e.target === overlay && close() },
    h(
      'div.help-card',
      {},
      h('h2', {}, 'Keyboard shortcuts'),
      h('table', {}, h('tbody', {}, ...SHORTCUTS.map(([k, d]) => h('tr', {}, h('td', {}, h('kbd', {}, k)), h('td', {}, d))))),
      h('button', { onclick: close }, 'Close (Esc)')
    )
  )
  document.body.append(overlay)
  document.addEventListener('keydown', onKey, true)
}

document.addEventListener('tl-help', () => showHelp())
document.addEventListener('keydown', (e) => {
  const tag = (e.target as HTMLElement).tagName
  if (e.key === '?' && tag !== 'INPUT' && tag !== 'TEXTAREA' && !location.hash.startsWith('#/case/')) showHelp()
})
